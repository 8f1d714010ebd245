"""The Servers page in Chromium: start a server from an environment, land in JupyterLab,
see it listed, stop it; field errors; narrow and dark layouts."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.helpers import GitRepo, dockerfile_repo
from tests.helpers import wait_build

START_TIMEOUT = 180_000  # ms: starting a container and loading JupyterLab on a busy machine


@pytest.fixture(scope="module")
def environment(hub, base_image, tmp_path_factory, run_id):
    repo = GitRepo(str(tmp_path_factory.mktemp("servers") / "repo"))
    dockerfile_repo(repo, base_image, marker="servers page")
    name = f"ui-servers-{run_id}"
    build = hub.rees("POST", "builds", json={"repo": repo.url, "name": name,
                                             "display_name": "Servers sample"}).json()
    assert wait_build(hub, build["id"])["status"] == "built"
    return name


def server_row(page, server):
    return page.locator(f'#servers-body tr[data-server="{server}"]')


def wait_stopped(hub, user, server, timeout=60):
    deadline = time.monotonic() + timeout
    while server in hub.request("GET", f"/hub/api/users/{user}").json()["servers"]:
        assert time.monotonic() < deadline, f"{user}/{server} did not stop"
        time.sleep(0.5)


def test_start_a_server_land_in_jupyterlab_and_stop_it(page, hub, login, shot, environment,
                                                       unique):
    user, server = unique("sam"), "analysis"
    login(page, user)
    page.goto(f"{hub.service_url}/servers")
    expect(page.locator("nav .nav-link.active")).to_have_text("Servers")
    expect(page.locator("#servers-empty")).to_have_text(re.compile("no servers"))
    page.select_option("#new-environment", environment)
    page.fill("#new-server-name", server)
    page.select_option("#new-profile", "small")
    shot(page, "servers-empty")
    page.click("#new-submit")

    # the Hub's progress page, then JupyterLab in the new server
    page.wait_for_url(re.compile(rf"/user/{user}/{server}/lab"), timeout=START_TIMEOUT)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=START_TIMEOUT)
    # the environment's files are in the file browser
    expect(page.locator(".jp-DirListing-itemText", has_text="marker.txt")).to_be_visible(
        timeout=START_TIMEOUT)
    shot(page, "servers-jupyterlab")

    page.goto(f"{hub.service_url}/servers")
    row = server_row(page, server)
    expect(row.locator("[data-status=ready]")).to_have_text("running")
    expect(row).to_contain_text("Servers sample")
    expect(row.locator("[data-action=open]")).to_have_attribute(
        "href", f"/user/{user}/{server}/")
    shot(page, "servers-running")

    row.locator("[data-action=stop]").click()
    expect(page.locator("#page-notice")).to_contain_text(f"Stopping {server}")
    expect(row).to_have_count(0, timeout=60_000)
    expect(page.locator("#servers-empty")).to_be_visible()
    wait_stopped(hub, user, server)
    shot(page, "servers-stopped")


def test_server_name_error_next_to_its_field(page, hub, login, environment, unique):
    login(page, unique("sam"))
    page.goto(f"{hub.service_url}/servers?environment={environment}")
    expect(page.locator("#new-environment")).to_have_value(environment)
    page.fill("#new-server-name", "Not Valid!")
    page.click("#new-submit")
    error = page.locator("#new-server-name-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("lowercase letters", ignore_case=True)
    expect(page.locator("#new-server-name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#new-server-name")).to_be_focused()
    unlabelled = page.evaluate("""() => Array.from(
        document.querySelectorAll('#new-form input, #new-form select'))
        .filter((e) => !e.labels.length).map((e) => e.id)""")
    assert unlabelled == []


def test_narrow_and_dark_layouts(page, hub, login, shot, environment, unique):
    login(page, unique("sam"))
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(f"{hub.service_url}/servers")
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    expect(page.locator(f'#new-environment option[value="{environment}"]')).to_have_count(1)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width}px wide in a 400px window"
    shot(page, "servers-narrow-dark")
    page.emulate_media(color_scheme="light")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "light")
    shot(page, "servers-narrow")
