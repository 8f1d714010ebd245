"""The admin's dashboard in Chromium, on the session's Hub: after a real build and a
failing one, the admin sees both in the build-durations chart and the failing one in the
recent failed builds, with its log; the week toggle; a plain user gets a 403 and no
Dashboard in the navigation."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import expect

from tests.helpers import GitRepo, build_through_service, wait_build

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def builds(hub, base_image, tmp_path_factory, run_id):
    good = build_through_service(hub, GitRepo(str(tmp_path_factory.mktemp("dash-good"))),
                                 base_image, {"marker.txt": "dashboard\n"},
                                 f"ui-dash-{run_id}")
    repo = GitRepo(str(tmp_path_factory.mktemp("dash-bad")))
    repo.commit({"Dockerfile": f"FROM {base_image}\nRUN false\n"})
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": f"ui-dash-bad-{run_id}"})
    assert r.status_code in (200, 202), r.text
    bad = wait_build(hub, r.json()["id"])
    assert bad["status"] == "failed", bad
    return good, bad


def test_the_admin_sees_builds_and_failures(page, hub, login, shot, builds):
    good, bad = builds
    login(page, "admin")
    page.goto(f"{hub.service_url}/")
    page.locator("nav .nav-link", has_text="Dashboard").click()
    expect(page.locator("nav .nav-link.active")).to_have_text("Dashboard")
    expect(page.locator("h1")).to_have_text("Dashboard")

    chart = page.locator("#builds-chart svg")
    expect(chart).to_have_attribute("role", "img")
    expect(chart).to_have_attribute("aria-label", re.compile(r"median .* 95th percentile"))
    points = page.locator("#builds-chart svg circle")
    titles = [points.nth(i).locator("title").text_content() for i in range(points.count())]
    assert any(t.startswith(f"{good['environment']}: built") for t in titles), titles
    assert any(t.startswith(f"{bad['environment']}: failed") for t in titles), titles
    failed_point = page.locator("#builds-chart circle.rees-chart-failed")
    assert failed_point.count() >= 1
    expect(page.locator("#builds-caption")).to_contain_text("median")
    # the text table for screen readers names both builds
    page.locator("#builds-chart summary").click()
    expect(page.locator(f'#builds-table tr[data-build="{good["id"]}"]')).to_contain_text(
        "built")

    failed = page.locator(f'#failed-builds tr[data-build="{bad["id"]}"]')
    expect(failed).to_contain_text(bad["environment"])
    log = failed.get_by_role("link", name="log")
    expect(log).to_have_attribute("href", re.compile(rf"api/builds/{bad['id']}/log$"))

    # the disk chart has the GC's watermarks; every chart is well-formed SVG
    expect(page.locator("#disk-chart svg .rees-chart-high text")).to_contain_text("high")
    expect(page.locator("#disk-chart svg .rees-chart-low text")).to_contain_text("low")
    for svg in page.locator("main svg").all():
        ET.fromstring(svg.evaluate("e => e.outerHTML"))
    expect(page.locator("#launches-chart figcaption")).to_contain_text(
        "how long the service took to answer")
    shot(page, "dashboard")

    page.locator("#dashboard-range a", has_text="Last week").click()
    expect(page).to_have_url(re.compile(r"dashboard\?range=week$"))
    expect(page.locator('#dashboard-range a[aria-current="page"]')).to_have_text("Last week")
    assert page.locator("#builds-chart svg circle").count() >= 2

    response = page.goto(f"{hub.service_url}/dashboard?range=month")
    assert response.status == 400


def test_a_plain_user_gets_a_403_and_no_dashboard_link(page, hub, login, unique):
    login(page, unique("dashuser"))
    page.goto(f"{hub.service_url}/")
    expect(page.locator("nav .nav-link", has_text="Environments")).to_be_visible()
    expect(page.locator("nav .nav-link", has_text="Dashboard")).to_have_count(0)
    response = page.goto(f"{hub.service_url}/dashboard")
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("403")
