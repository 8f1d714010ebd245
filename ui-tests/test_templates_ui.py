"""The Templates page in Chromium, on a Hub of its own with anonymous launches on (the
session's Hub has them off): an admin registers a template, sizes its pool and watches it
fill, meets the machine's limit, deletes pool and template; a plain user and a builder see
only what is theirs to do; names and messages from the API are shown as text."""

from __future__ import annotations

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.helpers import (GitRepo, build_through_service, remove_built_images,
                           start_demo_hub, stop_demo_hub)

POOL_TIMEOUT = 180_000  # ms: a pooled server's container starting on a busy machine
LIMITS = {"cpu": 0.5, "memory": "512M"}


@pytest.fixture(scope="module")
def od_hub(base_image, tmp_path_factory):
    state_dir = str(tmp_path_factory.mktemp("templates-ui-hub"))
    run = uuid.uuid4().hex[:6]
    with open(os.path.join(state_dir, "rees_config.py"), "w") as f:
        f.write("c.PoolManager.interval = 0.5\n")
    proc, hub = start_demo_hub(state_dir, {
        "anonymous": {"enabled": True, "max_servers": 3},
        "storage": {"volume_name": f"rees-tui{run}-{{username}}"},
        "builders": ["builder"],
    })
    hub.run = run
    yield hub
    stop_demo_hub(proc, hub)
    remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))


@pytest.fixture(scope="module")
def environment(od_hub, base_image, tmp_path_factory):
    repo = GitRepo(str(tmp_path_factory.mktemp("templates-ui-repo")))
    name = f"tui-env-{od_hub.run}"
    # public, so that the builder may register templates of it too
    build_through_service(od_hub, repo, base_image, {"marker.txt": "templates page\n"}, name,
                          public=True)
    return name


def login(page, hub, name: str) -> None:
    """Log ``name`` in through the demo Hub's login page (any password on loopback)."""
    hub.user_token(name)  # make sure the user exists
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", "any-password")
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/hub/login" not in url)


def template_row(page, name):
    return page.locator(f'#templates-body tr[data-template="{name}"]')


def pool_row(page, name):
    return page.locator(f'#pools-body tr[data-pool="{name}"]')


def test_admin_registers_a_template_runs_its_pool_and_deletes_both(page, od_hub, environment,
                                                                   shot):
    hub = od_hub
    name = f"tui-course-{hub.run}"
    page.on("dialog", lambda dialog: dialog.accept())
    login(page, hub, "admin")
    page.goto(f"{hub.service_url}/templates")
    expect(page.locator("nav .nav-link.active")).to_have_text("Templates")
    expect(page.locator(f'#register-environment option[value="{environment}"]')
           ).to_have_count(1)

    # a bad memory value: the API's message, naming its field, beside the field
    page.fill("#register-name", name)
    page.select_option("#register-environment", environment)
    page.fill("#register-memory", "lots")
    page.click("#register-submit")
    error = page.locator("#register-memory-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("limits.memory")
    expect(error).to_contain_text("512M or 2G")
    expect(page.locator("#register-memory")).to_have_attribute("aria-invalid", "true")
    expect(template_row(page, name)).to_have_count(0)

    # registered: in the table, completed, with its limits and a readable timeout
    page.fill("#register-memory", "512M")
    page.fill("#register-cpu", "0.5")
    page.fill("#register-cull", "10")
    page.check("#register-anonymous")
    page.click("#register-submit")
    row = template_row(page, name)
    expect(row.locator("[data-status]")).to_have_text("completed")
    expect(error).to_be_hidden()
    expect(row.locator("[data-col=environment]")).to_have_text(environment)
    expect(row.locator("[data-col=limits]")).to_have_text("512M, 0.5 CPUs")
    expect(row.locator("[data-col=cull-timeout]")).to_have_text("10 min")
    expect(row.locator("[data-col=max-age]")).to_have_text("none")
    expect(row.locator("[data-col=anonymous]")).to_have_text("yes")
    expect(row.locator("[data-col=allowed-users]")).to_have_text("everyone")
    expect(row.locator("[data-col=owner]")).to_have_text("admin")
    expect(row.locator("[data-action=delete-template]")).to_be_visible()
    body = hub.rees("GET", f"templates/{name}").json()
    assert body["cull-timeout"] == 600 and body["anonymous"] is True, body

    # its pool: none yet; size 1, and the page sees it fill without a reload
    pool = pool_row(page, name)
    expect(pool.locator("[data-col=size]")).to_have_text("no pool")
    expect(pool.locator("[data-action=delete-pool]")).to_be_hidden()
    pool.locator("[data-pool-size]").fill("1")
    pool.locator("[data-action=set-pool]").click()
    expect(page.locator("#page-notice")).to_contain_text(f"pool of {name} is set to 1")
    expect(pool.locator("[data-col=size]")).to_have_text("1")
    shot(page, "templates-pool-filling")
    expect(pool.locator("[data-col=available] [data-value]")).to_have_text(
        "1 of 1", timeout=POOL_TIMEOUT)
    expect(pool.locator("[data-bar]")).to_have_attribute("style", re.compile(r"width: 100%"))
    expect(pool.locator("[data-col=running]")).to_have_text("1")
    expect(pool.locator("[data-col=error]")).to_have_text("")
    shot(page, "templates-pool-full")

    # beyond the machine: the API's 409, with the CPUs it would take
    pool.locator("[data-pool-size]").fill("100")
    pool.locator("[data-action=set-pool]").click()
    pools_error = page.locator("#pools-error")
    expect(pools_error).to_be_visible()
    expect(pools_error).to_contain_text("more than this machine has")
    expect(pools_error).to_contain_text("50 CPUs")
    expect(pools_error).to_contain_text(re.compile(r"\(\d+(\.\d+)? CPUs, "))
    assert hub.rees("GET", f"pools/{name}").json()["size"] == 1

    # the pool goes, then the template
    pool.locator("[data-action=delete-pool]").click()
    expect(page.locator("#page-notice")).to_contain_text(f"Deleted the pool of {name}")
    expect(pools_error).to_be_hidden()
    expect(pool.locator("[data-col=size]")).to_have_text("no pool")
    assert hub.rees("GET", f"pools/{name}").status_code == 404
    row.locator("[data-action=delete-template]").click()
    expect(page.locator("#page-notice")).to_contain_text(f"Deleted template {name}")
    expect(row).to_have_count(0)
    expect(pool).to_have_count(0)
    assert hub.rees("GET", f"templates/{name}").status_code == 404


def test_plain_users_and_builders_see_only_what_is_theirs_to_do(page, od_hub, environment):
    hub = od_hub
    admins = f"tui-admins-{hub.run}"
    builders = f"tui-builders-{hub.run}"
    r = hub.rees("POST", "templates", json={"name": admins, "image-name": environment,
                                            "limits": LIMITS, "anonymous": True})
    assert r.status_code == 201, r.text
    r = hub.rees("POST", "templates", token=hub.user_token("builder"),
                 json={"name": builders, "image-name": environment, "limits": LIMITS})
    assert r.status_code == 201, r.text
    try:
        login(page, hub, f"zed-{hub.run}")
        page.goto(f"{hub.service_url}/templates")
        expect(template_row(page, admins).locator("[data-status]")).to_have_text("completed")
        expect(template_row(page, builders)).to_have_count(1)
        expect(page.locator("[data-action=delete-template]")).to_have_count(0)
        expect(page.locator("#register-form")).to_have_count(0)
        expect(page.locator("#pools-section")).to_have_count(0)
        expect(page.locator("#pools")).to_have_count(0)

        page.context.clear_cookies()
        login(page, hub, "builder")
        page.goto(f"{hub.service_url}/templates")
        expect(template_row(page, builders).locator("[data-action=delete-template]")
               ).to_be_visible()
        expect(template_row(page, admins)).to_have_count(1)
        expect(template_row(page, admins).locator("[data-action=delete-template]")
               ).to_have_count(0)
        expect(page.locator("#register-form")).to_be_visible()
        expect(page.locator("#pools-section")).to_have_count(0)
    finally:
        for name in (admins, builders):
            hub.rees("DELETE", f"templates/{name}")


def test_names_and_messages_are_shown_as_text(page, od_hub, environment):
    hub = od_hub
    login(page, hub, "admin")
    listed = f"tui-listed-{hub.run}"
    r = hub.rees("POST", "templates", json={"name": listed, "image-name": environment,
                                            "allowed-users": ["<b>bold</b>"]})
    assert r.status_code == 201, r.text
    try:
        page.goto(f"{hub.service_url}/templates")
        expect(page.locator(f'#register-environment option[value="{environment}"]')
               ).to_have_count(1)
        expect(template_row(page, listed).locator("[data-col=allowed-users]")).to_have_text(
            "<b>bold</b>")

        # a name with HTML in it is refused by the API's rule for names
        page.fill("#register-name", "<b>x</b>")
        page.click("#register-submit")
        name_error = page.locator("#register-name-error")
        expect(name_error).to_contain_text("name: expected 1 to 63 lowercase letters")
        assert all(t["name"] != "<b>x</b>"
                   for t in hub.rees("GET", "templates").json()["templates"])

        # an image name echoed in the API's message is shown literally, not as markup
        page.fill("#register-name", f"tui-esc-{hub.run}")
        page.evaluate("""() => {
            const select = document.getElementById('register-environment');
            const option = document.createElement('option');
            option.value = option.textContent = '<b>x</b>';
            select.append(option);
            select.value = '<b>x</b>';
        }""")
        page.click("#register-submit")
        image_error = page.locator("#register-environment-error")
        expect(image_error).to_contain_text("image-name: no environment '<b>x</b>'")
        expect(image_error.locator("b")).to_have_count(0)
        expect(page.locator("main b")).to_have_count(0)
        assert hub.rees("GET", f"templates/tui-esc-{hub.run}").status_code == 404
    finally:
        hub.rees("DELETE", f"templates/{listed}")


def test_narrow_and_dark_layouts(page, od_hub, environment, shot):
    hub = od_hub
    name = f"tui-narrow-{hub.run}"
    r = hub.rees("POST", "templates", json={"name": name, "image-name": environment,
                                            "limits": LIMITS, "anonymous": True})
    assert r.status_code == 201, r.text
    try:
        login(page, hub, "admin")
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size({"width": 400, "height": 800})
        page.goto(f"{hub.service_url}/templates")
        expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
        expect(pool_row(page, name).locator("[data-col=size]")).to_have_text("no pool")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width}px wide in a 400px window"
        unlabelled = page.evaluate("""() => Array.from(
            document.querySelectorAll('main input, main select'))
            .filter((e) => !e.labels.length && !e.getAttribute('aria-label'))
            .map((e) => e.id || e.outerHTML)""")
        assert unlabelled == []
        shot(page, "templates-narrow-dark")
    finally:
        hub.rees("DELETE", f"templates/{name}")
