"""Disk garbage collection's choices, with the fake engine and a fake disk whose use is
a fixed base plus the fake images' sizes."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import create_engine, select

from tljh_rees.catalog import Viewer
from tljh_rees.errors import Forbidden, InputError
from tljh_rees.operations.gc import GarbageCollector, note_launches, parse_docker_size
from tljh_rees.settings import SettingsError, parse_settings
from tljh_rees.store.db import _alembic_config, open_database
from tljh_rees.store.models import Build, Environment, Template

from .conftest import ADMIN, ALICE

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOTAL = 1000


def add(catalog, images, name, size, built_day, launched_day=None, pinned=False):
    image_id = images.add(f"rees-{name}:v1", name[0] * size)
    with catalog.transaction() as db:
        env = catalog.claim(db, ALICE, name, f"https://example.org/{name}")
        env.image, env.image_id, env.image_present = f"rees-{name}:v1", image_id, True
        env.image_size, env.built = size, T0 + timedelta(days=built_day)
        env.last_launched = T0 + timedelta(days=launched_day) if launched_day else None
        env.pinned = pinned
    return image_id


def disk(images, base):
    return lambda: (base + sum(images.sizes.values()), TOTAL)


def make_gc(catalog, images, base=0, **traits):
    traits.setdefault("build_cache_hours", 0)  # no docker here
    return GarbageCollector(catalog, images, disk(images, base), **traits)


def removed_images(report):
    return [r.what for r in report.removals if r.kind == "image"]


@pytest.fixture
def four(catalog, images):
    """a..d, 100 bytes each: c launched recently, a launched long ago, b and d never
    (b built before d)."""
    add(catalog, images, "aa", 100, built_day=1, launched_day=5)
    add(catalog, images, "bb", 100, built_day=2)
    add(catalog, images, "cc", 100, built_day=3, launched_day=30)
    add(catalog, images, "dd", 100, built_day=10)


def test_the_cap_removes_least_recently_launched_first_and_stops_under_it(catalog, images,
                                                                          four):
    report = make_gc(catalog, images, max_image_bytes=250).run()
    # last use: aa day 5, bb day 2 (built), cc day 30, dd day 10 (built)
    assert removed_images(report) == ["rees-bb:v1", "rees-aa:v1"]
    assert sorted(images.ids) == ["rees-cc:v1", "rees-dd:v1"]
    # the catalog shows them as needing a rebuild
    assert not catalog.get(ADMIN, "bb").launchable and catalog.get(ADMIN, "cc").launchable
    assert "over the cap" in report.removals[0].reason


def test_above_high_watermark_removes_down_to_low(catalog, images, four):
    # 500 + 400 = 90% > 85%: down to under 70% takes three images
    report = make_gc(catalog, images, base=500).run()
    assert removed_images(report) == ["rees-bb:v1", "rees-aa:v1", "rees-dd:v1"]
    assert report.used_before == 90.0 and report.used_after == 60.0
    assert "disk is 90.0% used" in report.removals[0].reason


def test_under_the_high_watermark_nothing_goes(catalog, images, four):
    report = make_gc(catalog, images, base=440).run()  # 84%
    assert report.removals == [] and len(images.ids) == 4


def test_in_use_and_pinned_images_are_never_removed(catalog, images, four):
    images.used.add(images.ids["rees-bb:v1"])
    with catalog.transaction() as db:
        db.scalars(select(Environment).where(Environment.name == "aa")).one().pinned = True
    report = make_gc(catalog, images, base=600, max_image_bytes=1).run()
    assert removed_images(report) == ["rees-dd:v1", "rees-cc:v1"]
    assert sorted(images.ids) == ["rees-aa:v1", "rees-bb:v1"]
    kept = "\n".join(report.kept)
    assert "rees-bb:v1: a running container uses it" in kept
    assert "rees-aa:v1: environment aa is pinned" in kept


def test_old_builds_and_deleted_environments_go_first(catalog, images, four):
    images.add("rees-dd:v0", "old build of dd" * 10)  # an older, no longer current
    images.add("rees-gone:v1", "deleted" * 10)  # no environment of that name
    report = make_gc(catalog, images, max_image_bytes=400).run()
    assert removed_images(report)[:2] == ["rees-dd:v0", "rees-gone:v1"]
    assert len(report.removals) == 2  # 400 left: under the cap
    assert "old build of dd" in report.removals[0].reason
    assert "deleted" in report.removals[1].reason


def test_a_new_image_is_kept_while_its_build_is_still_recording_it(catalog, images, four):
    """A builder's image exists a moment before its build makes it the environment's
    current one: it is not an 'old build' then (a cap once removed it at that moment)."""
    images.add("rees-dd:v2", "dd, built just now" * 10)
    with catalog.transaction() as db:
        env = db.scalars(select(Environment).where(Environment.name == "dd")).one()
        db.add(Build(id="b2", environment_id=env.id, environment="dd", repo=env.repo,
                     status="running"))
    report = make_gc(catalog, images, max_image_bytes=1).run()
    assert "rees-dd:v2" in images.ids and "rees-dd:v2" not in removed_images(report)
    assert "rees-dd:v2: a build of dd is under way" in "\n".join(report.kept)


def test_dry_run_removes_nothing_but_says_what_would_go(catalog, images, four, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "old.jsonl").write_text("x" * 10)
    with catalog.transaction() as db:
        env = db.scalars(select(Environment).where(Environment.name == "aa")).one()
        db.add(Build(id="old", environment_id=env.id, environment="aa", repo="r", ref="main",
                     owner="alice", status="built", created=datetime(2020, 1, 1)))
    before = dict(images.ids)
    gc = make_gc(catalog, images, base=500, max_image_bytes=250, logs_dir=str(logs))
    report = gc.run(dry_run=True)
    # under the cap leaves the disk at 70%: under the high watermark already
    assert removed_images(report) == ["rees-bb:v1", "rees-aa:v1"]
    assert [r.kind for r in report.removals][-1] == "log"
    assert images.ids == before and (logs / "old.jsonl").exists()
    assert catalog.get(ADMIN, "bb").launchable
    assert report.used_before == 90.0 and report.used_after == 69.0
    assert "(estimated)" in report.summary()
    assert report.removals[0].line(True).startswith("would remove image rees-bb:v1")
    # the real run removes what the dry run said
    real = gc.run()
    assert [(r.kind, r.what) for r in real.removals] == \
        [(r.kind, r.what) for r in report.removals]
    assert not (logs / "old.jsonl").exists() and not catalog.get(ADMIN, "bb").launchable


def test_old_logs_and_exports_go_but_not_the_last_builds(catalog, images, four, tmp_path):
    logs, exports = tmp_path / "logs", tmp_path / "exports"
    logs.mkdir()
    exports.mkdir()
    old = datetime(2020, 1, 1)
    with catalog.transaction() as db:
        env = db.scalars(select(Environment).where(Environment.name == "aa")).one()
        for build_id in ("b-old", "b-last", "b-new"):
            db.add(Build(id=build_id, environment_id=env.id, environment="aa", repo="r",
                         ref="main", owner="alice", status="built",
                         created=old if build_id != "b-new" else datetime.now()))
            (logs / f"{build_id}.jsonl").write_text("{}\n")
        env.last_build_id = "b-last"
        current = env.image_id
    for export_id, image_id in (("e-old", "sha256:e-old"), ("e-current", current)):
        (exports / f"{export_id}.json").write_text(json.dumps(
            {"id": export_id, "image_id": image_id, "created": "2020-01-01T00:00:00Z",
             "filename": f"{export_id}.sif"}))
        (exports / f"{export_id}.sif").write_bytes(b"s" * 50)
    report = make_gc(catalog, images, logs_dir=str(logs), exports_dir=str(exports)).run()
    assert sorted(os.listdir(logs)) == ["b-last.jsonl", "b-new.jsonl"]
    assert sorted(os.listdir(exports)) == ["e-current.json", "e-current.sif"]
    assert {(r.kind, r.what) for r in report.removals} == {("log", "aa/b-old"),
                                                            ("export", "e-old.sif")}


def test_docker_sizes_parse():
    assert parse_docker_size("Total:\t1.5GB") == 1_500_000_000
    assert parse_docker_size("Total: 512kB") == 512_000
    assert parse_docker_size("Total: 0B") == 0


class FakeHub:
    def __init__(self, users):
        self.users = users

    async def active_users(self):
        return self.users


async def test_launches_are_noted_from_the_hubs_servers(catalog, images, four):
    with catalog.transaction() as db:
        db.add(Template(name="tpl", image_name="dd", image_kind="environment"))
    hub = FakeHub([
        {"name": "u1", "servers": {"": {"user_options": {"environment": "bb"}}}},
        {"name": "u2", "servers": {"x": {"user_options": {"template": "tpl"}},
                                   "y": {"user_options": {}}}},
    ])
    assert await note_launches(hub, catalog) == {"bb", "dd"}
    assert catalog.get(ADMIN, "bb").last_launched is not None
    assert catalog.get(ADMIN, "aa").last_launched.year == 2026  # unchanged
    report = make_gc(catalog, images, max_image_bytes=300).run()
    assert removed_images(report) == ["rees-aa:v1"]  # bb, dd: just seen running


def test_only_admins_pin(catalog, images, four):
    with pytest.raises(Forbidden):
        catalog.update(ALICE, "aa", {"pinned": True})
    with pytest.raises(InputError):
        catalog.update(ADMIN, "aa", {"pinned": "yes"})
    assert catalog.update(ADMIN, "aa", {"pinned": True}).pinned
    assert catalog.update(ALICE, "aa", {"description": "still hers"}).pinned
    assert not catalog.update(Viewer("root", admin=True), "aa", {"pinned": False}).pinned


def test_gc_settings_are_checked_with_the_key_named():
    assert parse_settings({}).gc.high == 85 and parse_settings({}).gc.low == 70
    gc = parse_settings({"gc": {"max_image_bytes": "50G", "keep_days": 0}}).gc
    assert gc.max_image_bytes == 50 * 1024**3 and gc.keep_days == 0
    with pytest.raises(SettingsError) as e:
        parse_settings({"gc": {"high": 60, "low": 70, "max_image_bytes": "lots",
                               "interval": 0, "build_cache_hours": -1}})
    text = str(e.value)
    for expected in ("rees.gc.low: expected less than rees.gc.high (60), got 70",
                     "rees.gc.max_image_bytes: expected a size like 50G",
                     "rees.gc.interval:", "rees.gc.build_cache_hours:"):
        assert expected in text
    with pytest.raises(SettingsError, match=r"rees.gc.high: expected a whole percent"):
        parse_settings({"gc": {"high": 100}})


def test_a_0004_database_upgrades_with_its_data(tmp_path):
    path = tmp_path / "rees.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    command.upgrade(_alembic_config(engine), "0004")
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO environments (name, display_name, description, repo, ref, "
                   "owner, profile, public, image_present, created, updated) VALUES "
                   "('kept', '', '', 'https://e.org/k', 'main', 'alice', '', 1, 1, "
                   "'2026-01-01', '2026-01-02')")
    sessions = open_database(f"sqlite:///{path}")
    with sessions() as db:
        env = db.scalars(select(Environment)).one()
        assert (env.name, env.owner, env.pinned, env.last_launched) == \
            ("kept", "alice", False, None)
        env.pinned = True
        db.commit()
    # the ids of environments are still never reused (AUTOINCREMENT survives)
    with sqlite3.connect(path) as db:
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name='environments'").fetchone()
    assert "AUTOINCREMENT" in sql[0]
