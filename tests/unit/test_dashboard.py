"""The admin's dashboard: its SVG charts are well-formed XML with one mark per datum and
escaped labels; the sampler records the queue, the disk (through the GC's reading) and
launches, and prunes old samples; the dashboard reads builds and samples from a real
SQLite catalog."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from tljh_rees.operations import charts
from tljh_rees.operations.dashboard import Dashboard
from tljh_rees.operations.samples import Sampler
from tljh_rees.store.models import Build, Environment, Sample

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
EVIL = '<script>alert("x")</script> & \'more\''


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img" and root.get("aria-label")
    return root


def test_duration_chart_has_a_point_per_build_coloured_by_status_and_escaped_titles():
    builds = [(NOW - timedelta(hours=h), 30.0 * h, status, f"{EVIL} {h}")
              for h, status in ((1, "built"), (2, "failed"), (3, "cancelled"), (4, "built"))]
    svg = charts.duration_chart(builds, NOW - timedelta(days=1), NOW, f"label {EVIL}")
    root = parse(svg)
    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == 4
    assert [c.get("class").split()[-1] for c in circles] == [
        "rees-chart-built", "rees-chart-failed", "rees-chart-cancelled", "rees-chart-built"]
    assert circles[0].find(f"{SVG}title").text == f"{EVIL} 1"  # text, not markup
    assert root.get("aria-label") == f"label {EVIL}"
    assert "<script>" not in svg
    # later builds are further right; longer ones higher
    xs = [float(c.get("cx")) for c in circles]
    ys = [float(c.get("cy")) for c in circles]
    assert xs == sorted(xs, reverse=True) and ys == sorted(ys, reverse=True)


def test_an_empty_chart_is_still_valid_svg():
    for svg in (charts.duration_chart([], NOW - timedelta(days=1), NOW, "none"),
                charts.line_chart([], NOW - timedelta(days=7), NOW, "none"),
                charts.bar_list([], "none")):
        parse(svg)


def test_line_chart_has_every_point_and_the_watermarks():
    points = [(NOW - timedelta(minutes=m), 50.0 + m / 10) for m in range(0, 120, 10)]
    root = parse(charts.line_chart(points, NOW - timedelta(days=1), NOW, "disk", unit="%",
                                   y_max=100.0, lines=[(85.0, "high", "high 85%"),
                                                       (70.0, "low", "low 70%")]))
    line = root.find(f".//{SVG}polyline")
    assert len(line.get("points").split()) == len(points)
    groups = {g.get("class"): g for g in root.iter(f"{SVG}g")}
    assert groups["rees-chart-high"].find(f"{SVG}text").text == "high 85%"
    high_y = float(groups["rees-chart-high"].find(f"{SVG}line").get("y1"))
    low_y = float(groups["rees-chart-low"].find(f"{SVG}line").get("y1"))
    assert high_y < low_y  # higher percent, higher up


def test_bar_list_has_a_bar_per_item_longest_for_the_largest():
    items = [("alpha", 9.0), (EVIL, 3.0), ("gamma", 1.0)]
    root = parse(charts.bar_list(items, "launches"))
    bars = root.findall(f".//{SVG}rect")
    assert len(bars) == 3
    widths = [float(b.get("width")) for b in bars]
    assert widths == sorted(widths, reverse=True)
    assert bars[1].find(f"{SVG}title").text == f"{EVIL}: 3"


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert charts.percentile(values, 50) == 50 and charts.percentile(values, 95) == 95
    assert charts.percentile([7.0], 95) == 7.0 and charts.percentile([], 50) is None


def test_the_sampler_records_the_queue_and_the_disk_and_prunes(catalog):
    waiting = [3]
    sampler = Sampler(catalog, lambda: waiting[0], lambda: (40, 200))
    sampler.sample()
    waiting[0] = 1
    sampler.sample()
    queue = sampler.series("queue", NOW - timedelta(days=400))
    assert [p.value for p in queue] == [3.0, 1.0]
    assert [p.value for p in sampler.series("disk", NOW - timedelta(days=400))] == [20.0, 20.0]
    sampler.record("queue", 5, at=datetime.now(timezone.utc) - timedelta(days=9))
    sampler.record("disk", 50, at=datetime.now(timezone.utc) - timedelta(days=7))
    assert sampler.prune() == 1  # older than eight days
    with catalog.session() as db:
        assert sorted(db.scalars(select(Sample.value).where(Sample.kind == "queue"))) == [1, 3]
        assert db.query(Sample).filter_by(kind="disk").count() == 3
    with pytest.raises(ValueError):
        sampler.record("nonsense", 1)


def test_a_disk_that_cannot_be_read_still_records_the_queue(catalog):
    def broken():
        raise OSError("engine down")

    sampler = Sampler(catalog, lambda: 2, broken)
    sampler.sample()
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert [p.value for p in sampler.series("queue", since)] == [2.0]
    assert sampler.series("disk", since) == []


def test_the_dashboard_reads_builds_samples_and_failures(catalog):
    sampler = Sampler(catalog)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with catalog.transaction() as db:
        env = Environment(name="env-a", repo="r", image_id="sha256:a", image_present=True,
                          last_launched=now - timedelta(hours=1))
        db.add(env)
        db.flush()
        for i, (status, minutes_ago, took) in enumerate(
                [("built", 30, 120), ("failed", 60, 20), ("built", 60 * 30, 100),
                 ("failed", 60 * 24 * 3, 10)]):
            finished = now - timedelta(minutes=minutes_ago)
            db.add(Build(id=f"b{i}", environment_id=env.id, environment="env-a", repo="r",
                         status=status, error="RUN false: exit 1" if status == "failed"
                         else "", created=finished - timedelta(seconds=took + 5),
                         started=finished - timedelta(seconds=took), finished=finished))
    dashboard = Dashboard(catalog, sampler, 85.0, 70.0)
    day = dashboard.context("day", now)
    assert [b["id"] for b in day["builds"]["items"]] == ["b1", "b0"]  # oldest first
    assert day["builds"]["median"] == "20 s" and day["builds"]["p95"] == "2 min 0 s"
    assert len(ET.fromstring(str(day["builds"]["svg"])).findall(f".//{SVG}circle")) == 2
    week = dashboard.context("week", now)
    assert len(week["builds"]["items"]) == 4
    assert [b["id"] for b in day["failed"]] == ["b1", "b3"]
    # no launch samples: the environments last seen running
    assert day["top"]["source"] == "last_launched" and day["top"]["items"][0][0] == "env-a"
    sampler.launch(2.5, "env-a")
    sampler.launch(1.5, "env-a")
    sampler.launch(4.0, "template course")
    day = dashboard.context("day")
    assert day["top"]["items"] == [("env-a", 2), ("template course", 1)]
    assert len(ET.fromstring(str(day["top"]["svg"])).findall(f".//{SVG}rect")) == 2
    assert day["launches"]["count"] == 3 and day["launches"]["median"] == "2 s"
