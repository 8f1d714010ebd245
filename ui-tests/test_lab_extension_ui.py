"""The JupyterLab extension in Chromium, inside a real JupyterLab in a server the Hub
spawned from the local base image: a folder with a Dockerfile and a notebook becomes an
environment from the file browser's context menu, its build log is followed in a panel,
and Launch opens the notebook in the new environment."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import lab_folder, put_file, stop_server, wait_ready

START_TIMEOUT = 180_000  # ms: a container and JupyterLab on a busy machine
BUILD_TIMEOUT = 300_000
MENU_ITEM = "Make this folder an environment"


@pytest.fixture
def server(hub):
    """``server(user)`` starts the user's default server (the site's base image)."""
    started = []

    def start(user: str) -> str:
        token = hub.user_token(user)
        r = hub.request("POST", f"/hub/api/users/{user}/server", token=token)
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, user, token=token)
        started.append((user, token))
        return token

    yield start
    for user, token in started:
        for name in hub.request("GET", f"/hub/api/users/{user}").json()["servers"]:
            stop_server(hub, user, name)


def folder_menu(page, user: str, folder: str):
    """Open JupyterLab, right-click the folder; the menu's entry of the extension."""
    page.goto(f"{page.hub_url}/user/{user}/lab")
    item = page.locator('.jp-DirListing-item[data-isdir="true"]', has_text=folder)
    expect(item).to_be_visible(timeout=START_TIMEOUT)
    item.click(button="right")
    entry = page.locator(".lm-Menu-item", has_text=MENU_ITEM)
    expect(entry).to_be_visible()
    return entry


def test_folder_becomes_an_environment_and_launches(page, hub, login, shot, server,
                                                    base_image, unique):
    page.hub_url = hub.url
    token = server("builder")
    folder, name = unique("lab-folder"), unique("from-lab")
    lab_folder(hub, "builder", token, folder, base_image)
    login(page, "builder")
    entry = folder_menu(page, "builder", folder)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+C")  # the palette has it too
    page.locator(".lm-CommandPalette-input").press_sequentially("folder an environment")
    palette_item = page.locator(".lm-CommandPalette-item", has_text=MENU_ITEM)
    expect(palette_item).to_be_visible()
    expect(palette_item).to_contain_text("Build this folder into an environment")
    page.keyboard.press("Escape")
    entry = folder_menu(page, "builder", folder)
    expect(entry).not_to_have_class(re.compile("lm-mod-disabled"))
    entry.click()

    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(MENU_ITEM)
    checks = dialog.locator('.rees-lab-checks[data-checked="true"]')
    expect(checks).to_be_visible(timeout=60_000)
    expect(checks).to_contain_text("REES files:")
    expect(checks).to_contain_text("Dockerfile")
    expect(checks).to_contain_text("Left out by .gitignore")
    expect(checks).to_contain_text("data/")
    checks.locator("summary", has_text="Dockerfile repo2docker makes").click()
    expect(checks.locator("details pre")).to_contain_text("FROM ")
    expect(dialog.locator('input[name="rees-name"]')).to_have_value(folder)
    dialog.locator('input[name="rees-name"]').fill(name)
    dialog.locator('textarea[name="rees-description"]').fill("Made in JupyterLab")
    shot(page, "lab-extension-dialog")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()

    log = page.locator(".rees-lab-log")
    expect(log).to_be_visible(timeout=30_000)
    expect(log).to_have_attribute("data-phase", "built", timeout=BUILD_TIMEOUT)
    expect(log.locator("pre")).to_contain_text("[built]")
    shot(page, "lab-extension-log")
    env = hub.rees("GET", f"environments/{name}").json()
    assert env["owner"] == "builder" and env["description"] == "Made in JupyterLab"

    with page.context.expect_page() as opened:
        log.locator("button", has_text="Launch").click()
    launch = opened.value
    launch.locator("#launch-start").click()
    launch.wait_for_url(re.compile(rf"/user/builder/{name}/lab"), timeout=START_TIMEOUT)
    expect(launch.locator(".jp-DirListing-item", has_text="hello.ipynb")).to_be_visible(
        timeout=START_TIMEOUT)
    shot(launch, "lab-extension-launched")


def test_command_is_disabled_without_the_build_permission(page, hub, login, shot, server,
                                                          unique):
    page.hub_url = hub.url
    user = unique("lena")
    token = server(user)
    folder = unique("reader-folder")
    put_file(hub, user, token, folder, None, kind="directory")
    login(page, user)
    entry = folder_menu(page, user, folder)
    expect(entry).to_have_class(re.compile("lm-mod-disabled"))
    expect(entry).to_contain_text("(needs the build permission)")
    shot(page, "lab-extension-disabled")
