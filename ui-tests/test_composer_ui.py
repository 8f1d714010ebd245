"""The composer in a real browser: type sections, see a line-numbered error, fix it, see
repo2docker's preview, save versions; a Dockerfile marks the other sections ignored."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect


def test_compose_fix_preview_and_save(page, hub, login, shot):
    name = f"ui-{uuid.uuid4().hex[:6]}"
    login(page, "admin")
    page.goto(f"{hub.service_url}/composer")
    expect(page.get_by_role("heading", name="Compose an environment")).to_be_visible()
    expect(page.locator("nav .nav-link.active")).to_have_text("Composer")
    shot(page, "composer-new")

    page.fill("#spec-name", name)
    page.fill("#spec-display-name", "UI analysis")
    page.fill("#text-runtime", "python-3.12\n")
    page.fill("#text-requirements", "numpy\npandas=2\nrequests\n")
    problem = page.locator("#problems-requirements li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("requirements.txt line 2")
    expect(problem).to_contain_text("PEP 508")
    expect(page.locator("#status-requirements")).to_have_text("1 error")
    expect(page.locator("#gutter-requirements .rees-bad")).to_have_text("2\n")
    expect(page.locator("#text-requirements")).to_have_attribute("aria-invalid", "true")
    shot(page, "composer-line-error")

    # saving with an error is refused, and nothing is created
    page.click("#save-button")
    expect(page.locator("#composer-message")).to_contain_text("Not saved")
    assert hub.rees("GET", f"specs/{name}").status_code == 404

    page.fill("#text-requirements", "numpy\npandas==2.2\nrequests\n")
    expect(page.locator("#problems-requirements li")).to_have_count(0)
    expect(page.locator("#status-requirements")).to_have_text("ok")
    page.fill("#text-apt", "curl\n")
    page.fill("#text-extensions", "jupyterlab-git\n")
    expect(page.locator("#preview-buildpack")).to_contain_text("Python")
    expect(page.locator("#preview-dockerfile")).to_contain_text("--no-install-recommends curl")
    expect(page.locator("#preview-messages")).to_contain_text("python=3.12")
    shot(page, "composer-preview")

    page.click("#save-button")
    page.wait_for_url(re.compile(rf"/composer/{name}\?saved="))
    expect(page.locator("#composer-message")).to_contain_text("Saved version")
    expect(page.locator("#versions li")).to_have_count(1)
    expect(page.locator("#text-extensions")).to_have_value("jupyterlab-git\n")
    first = hub.rees("GET", f"specs/{name}").json()
    assert first["sections"]["requirements"] == "numpy\npandas==2.2\nrequests\n"
    assert first["display_name"] == "UI analysis"

    page.fill("#text-apt", "curl\nwget\n")
    page.fill("#save-message", "add wget")
    page.click("#save-button")
    expect(page.locator("#composer-message")).to_contain_text("Saved version")
    expect(page.locator("#versions li")).to_have_count(2)
    expect(page.locator("#versions li").first).to_contain_text("add wget")
    second = hub.rees("GET", f"specs/{name}").json()
    assert second["version"] != first["version"] and second["sections"]["apt"] == "curl\nwget\n"
    shot(page, "composer-saved")

    # advanced mode: a Dockerfile makes the other sections ignored, and the page says so
    page.fill("#text-dockerfile", "FROM example.org/base:1\n")
    expect(page.locator("#problems-requirements li")).to_contain_text("ignored")
    expect(page.locator("#section-requirements")).to_have_class(re.compile("rees-ignored"))
    expect(page.locator("#preview-buildpack")).to_have_text("your Dockerfile")
    expect(page.locator("#preview-dockerfile")).to_have_text("FROM example.org/base:1\n")
    shot(page, "composer-dockerfile")


def test_readers_see_a_spec_and_its_preview_read_only(page, hub, login, shot):
    name = f"ui-read-{uuid.uuid4().hex[:6]}"
    r = hub.rees("POST", "specs", json={"name": name, "sections": {
        "requirements": "numpy\n", "apt": "curl\n"}})
    assert r.status_code == 201, r.text
    reader = f"reader-{uuid.uuid4().hex[:6]}"
    login(page, reader)
    page.goto(f"{hub.service_url}/composer/{name}")
    expect(page.locator("#text-requirements")).to_have_value("numpy\n")
    expect(page.locator("#text-requirements")).to_have_attribute("readonly", "")
    expect(page.locator("#save-button")).to_have_count(0)
    expect(page.get_by_text("need the build permission")).to_be_visible()
    expect(page.locator("#preview-dockerfile")).to_contain_text("--no-install-recommends curl")
    expect(page.locator("#zip-link")).to_be_visible()
    shot(page, "composer-reader")
