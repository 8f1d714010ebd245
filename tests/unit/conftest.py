"""Fixtures of the unit tier: a real SQLite catalog in a temporary folder, and the
build queue with the fake engine and builder. No Docker, no Hub.

Every test under tests/unit is marked ``unit``: ``pytest -m unit`` runs this tier alone.
"""

from __future__ import annotations

import os

import pytest

from tljh_rees.builds.manager import BuildManager
from tljh_rees.builds.orphans import ProcessNotes
from tljh_rees.catalog import Catalog, Profiles, Viewer
from tljh_rees.fakes import FakeBuilder, FakeImages
from tljh_rees.store.db import open_database
from tljh_rees.store.logs import LogStore

UNIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(UNIT_DIR):
            item.add_marker(pytest.mark.unit)


PROFILES = [{"name": "small", "cpu": 1.0, "memory": 2 * 1024**3},
            {"name": "large", "cpu": 2.0, "memory": 8 * 1024**3}]

ADMIN = Viewer("root", admin=True, builder=True)
ALICE = Viewer("alice", builder=True)
BOB = Viewer("bob", builder=True)
READER = Viewer("reader")


@pytest.fixture
def catalog(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'rees.sqlite'}")
    return Catalog(sessions, Profiles(PROFILES, default="small"))


@pytest.fixture
def images():
    return FakeImages()


@pytest.fixture
def builder(images):
    return FakeBuilder(images)


@pytest.fixture
async def manager(catalog, images, builder, tmp_path):
    logs = LogStore(directory=str(tmp_path / "logs"))
    manager = BuildManager(catalog, logs, builder, images, ProcessNotes(str(tmp_path / "run")))
    await manager.start()
    yield manager
    await manager.shutdown()
