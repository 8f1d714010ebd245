"""A "try it" link in Chromium, as a visitor with no account: the page launches the
anonymous template, shows its progress, and opens JupyterLab on the linked file."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

START_TIMEOUT = 180_000


def test_a_try_link_opens_jupyterlab_for_a_visitor(page, od_hub, od_environment, shot):
    name = f"try-ui-{od_hub.run}"
    r = od_hub.rees("POST", "templates", json={
        "name": name, "image-name": od_environment, "anonymous": True,
        "limits": {"cpu": 0.5, "memory": "512M"}})
    assert r.status_code == 201, r.text
    # the Hub's launches-per-address cap is small: come from an address of our own
    page.set_extra_http_headers({"X-Forwarded-For": "198.51.100.20"})
    page.goto(f"{od_hub.service_url}/try/{name}?labpath=marker.txt")
    expect(page.locator("h1")).to_have_text(name)
    page.wait_for_url(re.compile(r"/user/anon-[0-9a-f]{16}/"), timeout=START_TIMEOUT)
    shot(page, "try-link-lab")
    expect(page.locator(".jp-FileEditor, .jp-MainAreaWidget").first).to_contain_text(
        "on demand", timeout=START_TIMEOUT)
    user = re.search(r"/user/(anon-[0-9a-f]{16})/", page.url).group(1)
    # the visitor has no login of the Hub: only that server
    home = requests.get(f"{od_hub.url}/hub/home", cookies={
        c["name"]: c["value"] for c in page.context.cookies()}, allow_redirects=False,
        timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]
    od_hub.rees("DELETE", f"templates/{name}")
    assert od_hub.request("GET", f"/hub/api/users/{user}").status_code == 404


def test_a_try_link_over_a_cap_says_so(page, od_hub, od_environment):
    name = f"try-full-{od_hub.run}"
    r = od_hub.rees("POST", "templates", json={
        "name": name, "image-name": od_environment, "anonymous": True,
        "limits": {"cpu": 0.5, "memory": "512M"}, "max-servers": 1})
    assert r.status_code == 201, r.text
    taken = requests.post(f"{od_hub.service_url}/api/applications/{name}",
                          headers={"X-Forwarded-For": "198.51.100.21"}, timeout=60)
    assert taken.status_code == 201, taken.text
    page.set_extra_http_headers({"X-Forwarded-For": "198.51.100.22"})
    page.goto(f"{od_hub.service_url}/try/{name}")
    expect(page.locator("#try-error")).to_contain_text("max-servers")
    expect(page.locator("#try-error")).to_contain_text("Try again in 1 min")
    od_hub.rees("DELETE", f"templates/{name}")
