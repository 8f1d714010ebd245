"""Alembic migrations on a real SQLite file: a database of the first release upgrades
with its data, and builds of environments deleted back then do not come back."""

from __future__ import annotations

import sqlite3

from alembic import command
from sqlalchemy import create_engine, select

from tljh_rees.catalog import Catalog, Profiles, Viewer
from tljh_rees.store.db import _alembic_config, open_database
from tljh_rees.store.models import Build, Environment


def test_a_first_release_database_upgrades_with_its_data(tmp_path):
    path = tmp_path / "rees.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    command.upgrade(_alembic_config(engine), "0001")
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO environments (name, display_name, description, repo, ref, "
                   "\"commit\", image, owner, profile, public, created, updated) VALUES "
                   "('kept', 'Kept', '', 'https://e.org/k', 'main', 'c1', 'rees-kept:c1', "
                   "'alice', 'small', 0, '2026-01-01', '2026-01-02')")
        for build_id, env, created in (("b1", "kept", "2026-01-01"), ("b2", "kept", "2026-01-03"),
                                       ("b3", "deleted-long-ago", "2026-01-02")):
            db.execute("INSERT INTO builds (id, environment, repo, ref, owner, profile, status, "
                       "cache_hit, private, error, created) VALUES (?, ?, 'r', 'main', 'alice', "
                       "'', 'built', 0, 0, '', ?)", (build_id, env, created))
    sessions = open_database(f"sqlite:///{path}")  # upgrades to the newest revision
    with sessions() as db:
        env = db.scalars(select(Environment)).one()
        assert (env.name, env.owner, env.public, env.profile) == ("kept", "alice", False, "small")
        assert env.image == "rees-kept:c1" and env.image_id is None  # filled in by sync
        assert env.last_build_id == "b2"
        builds = db.scalars(select(Build).order_by(Build.id)).all()
        assert [(b.id, b.environment_id) for b in builds] == [("b1", env.id), ("b2", env.id)]
    # the migrated record finds its image id from the tag the service recorded
    catalog = Catalog(sessions, Profiles([]))
    assert catalog.sync({"sha256:k": 10}, {"rees-kept:c1": "sha256:k"}) == []
    assert catalog.get(Viewer("alice"), "kept").image_id == "sha256:k"


def test_environments_get_no_default_services_when_upgraded_from_0004(tmp_path):
    path = tmp_path / "rees.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    command.upgrade(_alembic_config(engine), "0004")
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO environments (id, name, display_name, description, repo, ref, "
                   "image, image_id, image_present, owner, profile, public, created, updated) "
                   "VALUES (7, 'kept', '', '', 'https://e.org/k', 'main', 'rees-kept:c1', "
                   "'sha256:k', 1, 'alice', '', 1, '2026-01-01', '2026-01-02')")
        db.execute("INSERT INTO builds (id, environment_id, environment, repo, source, ref, "
                   "owner, profile, status, cache_hit, private, error, created) VALUES "
                   "('b1', 7, 'kept', 'r', 'git', 'main', 'alice', '', 'built', 0, 0, '', "
                   "'2026-01-01')")
    sessions = open_database(f"sqlite:///{path}")
    with sessions() as db:
        env = db.scalars(select(Environment)).one()
        assert (env.name, env.image_id, env.services) == ("kept", "sha256:k", "[]")
        assert db.scalars(select(Build)).one().services is None
    plan = Catalog(sessions, Profiles([])).launch_plan(Viewer("bob"), "kept")
    assert plan.services == () and plan.image == "sha256:k"
