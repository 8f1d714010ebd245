"""Launch links and the Hub's spawn page in Chromium: a link opens a file of the
environment in JupyterLab; the spawn page's environment picker has the Hub's look."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import GitRepo, dockerfile_repo, stop_server, wait_build

START_TIMEOUT = 180_000  # ms: starting a container and loading JupyterLab on a busy machine


@pytest.fixture(scope="module")
def environment(hub, base_image, tmp_path_factory, run_id):
    repo = GitRepo(str(tmp_path_factory.mktemp("launch") / "repo"))
    marker = f"launched by link {run_id}"
    dockerfile_repo(repo, base_image, marker=marker)
    # first by name: the spawn page lists the first 30 environments (others are typed),
    # and this session's Hub has built many by now
    name = f"a-ui-launch-{run_id}"
    build = hub.rees("POST", "builds", json={
        "repo": repo.url, "name": name, "display_name": "Launch sample",
        "description": "Opened from a launch link"}).json()
    assert wait_build(hub, build["id"])["status"] == "built"
    return {"name": name, "marker": marker}


def test_launch_link_opens_a_file_in_jupyterlab(page, hub, login, shot, environment, unique):
    user, name = unique("rita"), environment["name"]
    login(page, user)
    page.goto(f"{hub.service_url}/launch/{name}?urlpath=lab/tree/marker.txt")
    expect(page.locator("h1")).to_contain_text("Launch")
    shot(page, "launch-confirm")
    assert hub.request("GET", f"/hub/api/users/{user}").json()["servers"] == {}
    page.click("#launch-start")  # the user's own click starts it
    page.wait_for_url(re.compile(rf"/user/{user}/{name}/lab/tree/marker\.txt"),
                      timeout=START_TIMEOUT)
    editor = page.locator(".jp-FileEditor .cm-content")
    expect(editor).to_contain_text(environment["marker"], timeout=START_TIMEOUT)
    shot(page, "launch-file-in-jupyterlab")

    # the Environments page's launch button is the same link
    page.goto(f"{hub.service_url}/")
    launch = page.locator(f'#environments-body tr[data-env="{name}"] [data-action=launch]')
    expect(launch).to_have_attribute("href", f"/services/rees/launch/{name}")
    stop_server(hub, user, name)


def test_spawn_page_picker(page, hub, login, shot, environment, unique):
    user = unique("rita")
    login(page, user)
    page.goto(f"{hub.url}/hub/spawn/{user}/picked")
    picker = page.locator("#rees-environments")
    choice = picker.locator("label.list-group-item", has_text="Launch sample")
    expect(choice).to_be_visible()
    expect(choice).to_contain_text("Opened from a launch link")
    choice.click()  # the whole row is the radio button's label
    radio = page.locator(f'input[name=environment][value="{environment["name"]}"]')
    expect(radio).to_be_checked()
    expect(page.get_by_label("Machine profile")).to_have_value("")  # the environment's own
    shot(page, "spawn-picker")

    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 400, "height": 800})
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    expect(choice).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width}px wide in a 400px window"
    shot(page, "spawn-picker-narrow-dark")


def test_a_spawn_link_with_options_only_fills_the_form(page, hub, login, environment, unique):
    """JupyterHub starts a server from query arguments on a GET; a link from another site
    must not start one with the user's files, so the form is shown, filled in."""
    user = unique("linked")
    login(page, user)
    page.goto(f"{hub.url}/hub/spawn/{user}/linked?environment={environment['name']}")
    expect(page.locator("#rees-environments")).to_be_visible()
    expect(page.get_by_text("a link does not start a server")).to_be_visible()
    radio = page.locator(f'input[name=environment][value="{environment["name"]}"]')
    expect(radio).to_be_checked()
    assert "linked" not in hub.request("GET", f"/hub/api/users/{user}").json()["servers"]
