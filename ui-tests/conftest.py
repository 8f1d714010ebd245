"""Browser fixtures: Playwright driving Debian's Chromium against the demo Hub.

Playwright's own browser download cannot work here, so the system Chromium is used.
Every test can save screenshots with ``shot(page, name)`` into test-artifacts/.
"""

from __future__ import annotations

import os

import pytest

ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "test-artifacts", "screenshots")
CHROMIUM = os.environ.get("REES_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"],
    }


@pytest.fixture
def shot():
    """``shot(page, name)`` saves a full-page screenshot as a test artifact."""
    os.makedirs(ARTIFACTS, exist_ok=True)

    def take(page, name: str) -> str:
        path = os.path.join(ARTIFACTS, f"{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def login(hub):
    """``login(page, name)`` logs ``name`` in through the Hub's own login form."""

    def do_login(page, name: str) -> None:
        hub.user_token(name)  # make sure the user exists (admins are made by the Hub)
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", "any-password")
        page.click("#login_submit")
        page.wait_for_url(lambda url: "/hub/login" not in url)

    return do_login
