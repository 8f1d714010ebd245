"""The Environments page in Chromium: adding an environment and following its build log,
rebuilding, cancelling, failed builds, deleting; what people without the build permission
see; field errors; keyboard use; narrow and dark layouts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import GitRepo, dockerfile_repo
from tests.helpers import wait_build

BUILD_TIMEOUT = 300_000  # ms; a build queues behind other tests' builds on a shared engine


@pytest.fixture(scope="module")
def shared_env(hub, base_image, tmp_path_factory, run_id):
    """An environment built through the API, for the tests that only look at it."""
    repo = GitRepo(str(tmp_path_factory.mktemp("shared") / "repo"))
    commit = dockerfile_repo(repo, base_image, marker="shared")
    name = f"ui-shared-{run_id}"
    build = hub.rees("POST", "builds", json={"repo": repo.url, "name": name,
                                             "display_name": "Shared sample"}).json()
    assert wait_build(hub, build["id"])["status"] == "built"
    return {"name": name, "commit": commit, "repo": repo}


def env_row(page, name):
    return page.locator(f'#environments-body tr[data-env="{name}"]')


def assert_fits(page, width):
    """Nothing wider than the window: no sideways scrolling, no cut-off content."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width}px wide in a {width}px window"


def test_admin_adds_an_environment_and_follows_its_log_to_built(
        page, hub, login, shot, base_image, git_repo, unique):
    repo = git_repo()
    commit = dockerfile_repo(repo, base_image, marker="added in the browser")
    name = unique("ui-added")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, "admin")
    page.goto(f"{hub.service_url}/")
    expect(page.get_by_role("heading", name="Environments", exact=True)).to_be_visible()
    expect(page.locator("nav .nav-link.active")).to_have_text("Environments")
    shot(page, "environments-admin")

    page.click("#add-open")
    expect(page.locator("#add-repo")).to_be_focused()
    # every field of the dialog has a label
    unlabelled = page.evaluate("""() => Array.from(
        document.querySelectorAll('#add-form input, #add-form select, #add-form textarea'))
        .filter((e) => !e.labels.length).map((e) => e.id)""")
    assert unlabelled == []
    page.fill("#add-repo", repo.url)
    page.fill("#add-name", name)
    page.fill("#add-display-name", "Added in the browser")
    page.fill("#add-description", "Made by the UI test")
    page.select_option("#add-profile", "medium")
    shot(page, "environments-add-dialog")
    page.click("#add-submit")

    # the dialog closes, the new environment is listed, its log streams to the end
    expect(page.locator("#add-dialog")).to_be_hidden()
    expect(env_row(page, name)).to_be_visible()
    expect(page.locator("#log-panel")).to_be_visible()
    expect(page.locator("#log-title")).to_contain_text("Added in the browser")
    expect(page.locator("#log-status [data-status=built]")).to_be_visible(timeout=BUILD_TIMEOUT)
    log = page.locator("#log-text")
    expect(log).to_contain_text("[queued]")
    expect(log).to_contain_text("checked out")
    expect(log).to_contain_text("[built]")
    # the log panel follows the end of the log
    at_end = page.evaluate("""() => { const p = document.getElementById('log-text');
                                      return p.scrollHeight - p.scrollTop - p.clientHeight; }""")
    assert at_end < 24

    row = env_row(page, name)
    expect(row.locator("[data-status=built]")).to_be_visible()
    expect(row).to_contain_text(commit[:7])
    expect(row).to_contain_text("2 CPU")
    expect(row.locator("td[data-label='Image size']")).to_have_text(re.compile(r"\d+(\.\d)? [kMG]B"))
    expect(row.locator("td[data-label='Owner']")).to_have_text("admin")
    shot(page, "environments-log-built")

    # copy and download give the whole log
    page.click("#log-copy")
    expect(page.locator("#log-copy")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "checked out" in copied and "[built]" in copied
    with page.expect_download() as download:
        page.click("#log-download")
    text = open(download.value.path(), encoding="utf-8").read()
    assert download.value.suggested_filename.startswith(name)
    assert "checked out" in text and "[built]" in text

    # rebuild fetches the ref's new commit
    new_commit = repo.commit({"marker.txt": "changed\n"})
    row.locator("[data-action=rebuild]").click()
    expect(page.locator("#page-notice")).to_contain_text(new_commit[:7])
    expect(page.locator("#log-title")).to_contain_text(new_commit[:7])
    expect(page.locator("#log-status [data-status=built]")).to_be_visible(timeout=BUILD_TIMEOUT)
    expect(row).to_contain_text(new_commit[:7])
    env = hub.rees("GET", f"environments/{name}").json()
    assert env["commit"] == new_commit and env["profile"] == "medium"
    assert env["display_name"] == "Added in the browser"

    # rebuilding an unchanged ref is answered from the cache
    row.locator("[data-action=rebuild]").click()
    expect(page.locator("#page-notice")).to_contain_text("up to date")


def test_bad_input_is_shown_next_to_its_field(page, hub, login, shot):
    login(page, "admin")
    page.goto(f"{hub.service_url}/")
    page.click("#add-open")
    page.fill("#add-repo", "not a url")
    page.click("#add-submit")
    error = page.locator("#add-repo-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("spaces")
    expect(page.locator("#add-repo")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#add-repo")).to_be_focused()
    shot(page, "environments-field-error")

    page.fill("#add-repo", "ftp://example.org/repo")
    page.click("#add-submit")
    expect(error).to_contain_text("unsupported URL scheme", ignore_case=True)

    page.fill("#add-repo", "https://example.org/owner/repo")
    page.fill("#add-name", "Not A Name")
    page.click("#add-submit")
    expect(page.locator("#add-name-error")).to_contain_text("lowercase letters", ignore_case=True)
    expect(error).to_be_hidden()  # the earlier error went away
    expect(page.locator("#add-name")).to_have_attribute("aria-invalid", "true")
    assert "Not A Name" not in hub.rees("GET", "environments").text


def test_keyboard_opens_and_closes_the_dialog(page, hub, login):
    login(page, "admin")
    page.goto(f"{hub.service_url}/")
    page.focus("#add-open")
    page.keyboard.press("Enter")
    expect(page.locator("#add-repo")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#add-ref")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#add-dialog")).to_be_hidden()
    expect(page.locator("#add-open")).to_be_focused()


def test_reader_sees_environments_but_no_build_controls(page, hub, login, shot, shared_env,
                                                         unique):
    name = shared_env["name"]
    login(page, unique("reader"))
    page.goto(f"{hub.service_url}/")
    row = env_row(page, name)
    expect(row).to_be_visible()
    expect(row).to_contain_text("Shared sample")
    expect(row.locator("[data-action=launch]")).to_be_visible()
    expect(row.locator("[data-action=log]")).to_be_visible()  # logs are readable
    expect(page.locator("#no-build-note")).to_be_visible()
    for control in ("#add-open", "#add-dialog", "#delete-dialog", "#log-cancel",
                    "[data-action=rebuild]", "[data-action=delete]", "[data-action=cancel]"):
        expect(page.locator(control)).to_have_count(0)
    shot(page, "environments-reader")


def test_builder_manages_own_environments_only(page, hub, login, shared_env):
    login(page, "builder")
    page.goto(f"{hub.service_url}/")
    expect(page.locator("#add-open")).to_be_visible()
    row = env_row(page, shared_env["name"])  # the admin's
    expect(row).to_be_visible()
    expect(row.locator("[data-action=rebuild]")).to_have_count(0)
    expect(row.locator("[data-action=delete]")).to_have_count(0)


def test_cancel_a_running_build_and_a_failed_build_keeps_its_log(
        page, hub, login, shot, base_image, git_repo, unique):
    slow, failing = git_repo(), git_repo()
    slow.commit({"Dockerfile": f"FROM {base_image}\nRUN echo slow-step-started && sleep 600\n"})
    failing.commit({"Dockerfile": f"FROM {base_image}\nRUN echo about-to-fail && exit 3\n"})
    slow_name, failing_name = unique("ui-slow"), unique("ui-failing")
    failed = hub.rees("POST", "builds", json={"repo": failing.url, "name": failing_name}).json()
    assert wait_build(hub, failed["id"])["status"] == "failed"

    login(page, "admin")
    page.goto(f"{hub.service_url}/")
    page.click("#add-open")
    page.fill("#add-repo", slow.url)
    page.fill("#add-name", slow_name)
    page.click("#add-submit")
    expect(page.locator("#log-text")).to_contain_text("slow-step-started", timeout=BUILD_TIMEOUT)
    expect(page.locator("#log-cancel")).to_be_visible()
    page.click("#log-cancel")
    expect(page.locator("#log-status [data-status=cancelled]")).to_be_visible(timeout=60_000)
    expect(env_row(page, slow_name).locator("[data-status=cancelled]")).to_be_visible()

    # the failed build's log is still there to read
    row = env_row(page, failing_name)
    expect(row.locator("[data-status=failed]")).to_be_visible()
    row.locator("[data-action=log]").click()
    expect(page.locator("#log-status [data-status=failed]")).to_be_visible()
    expect(page.locator("#log-text")).to_contain_text("about-to-fail")
    expect(page.locator("#log-text")).to_contain_text("[failed]")
    shot(page, "environments-failed-log")

    # delete asks first; keeping it changes nothing
    row.locator("[data-action=delete]").click()
    expect(page.locator("#delete-dialog")).to_be_visible()
    expect(page.locator("#delete-name")).to_have_text(failing_name)
    shot(page, "environments-delete-confirm")
    page.get_by_role("button", name="Keep it").click()
    expect(page.locator("#delete-dialog")).to_be_hidden()
    expect(row).to_be_visible()
    row.locator("[data-action=delete]").click()
    page.click("#delete-submit")
    expect(row).to_have_count(0)
    expect(page.locator("#page-notice")).to_contain_text(f"Deleted {failing_name}")
    assert hub.rees("GET", f"environments/{failing_name}").status_code == 404


def test_narrow_and_dark_layouts(page, hub, login, shot, shared_env):
    login(page, "admin")
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(f"{hub.service_url}/")
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    expect(env_row(page, shared_env["name"])).to_be_visible()
    assert_fits(page, 400)
    shot(page, "environments-narrow-dark")
    # the collapsed navigation opens from its toggle
    servers_link = page.locator("#rees-navbar").get_by_role("link", name="Servers")
    expect(servers_link).to_be_hidden()
    page.click(".navbar-toggler")
    expect(servers_link).to_be_visible()
    page.click(".navbar-toggler")
    page.click("#add-open")
    expect(page.locator("#add-repo")).to_be_visible()
    assert_fits(page, 400)
    shot(page, "environments-add-narrow-dark")

    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(f"{hub.service_url}/")
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "light")
    expect(env_row(page, shared_env["name"])).to_be_visible()
    shot(page, "environments-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.emulate_media(color_scheme="dark")
    page.reload()
    expect(env_row(page, shared_env["name"])).to_be_visible()
    shot(page, "environments-dark")


def test_hub_navbar_links_to_the_pages(page, hub, login, shot):
    login(page, "admin")
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator("#rees-nav-servers")).to_have_text("Servers")
    shot(page, "hub-home-navbar")
    page.click("#rees-nav-environments")
    page.wait_for_url(f"{hub.service_url}/")
    expect(page.get_by_role("heading", name="Environments", exact=True)).to_be_visible()
    page.goto(f"{hub.service_url}/environments")
    page.wait_for_url(f"{hub.service_url}/")
