"""Shared fixtures: a real Docker engine, the local base image, a real demo Hub.

Nothing here is mocked: the Hub is ``tljh-rees demo`` (JupyterHub + proxy + the rees
service + DockerSpawner) on free ports, and repositories are local git repos.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.helpers import GitRepo, start_demo_hub, stop_demo_hub
from tljh_rees.engine.baseimage import BaseImageRecipe, default_ca_bundle, ensure_base_image
from tljh_rees.engine.host import ensure_engine


@pytest.fixture(scope="session")
def engine():
    ensure_engine()


@pytest.fixture(scope="session")
def base_image(engine):
    return ensure_base_image(BaseImageRecipe(ca_bundle=default_ca_bundle()),
                             progress=lambda m: print(f"[base image] {m}", file=sys.stderr))


@pytest.fixture(scope="session")
def hub(base_image, tmp_path_factory):
    """One demo Hub for the session (volumes are per test run, so runs don't share files)."""
    run_id = uuid.uuid4().hex[:6]
    state_dir = str(tmp_path_factory.mktemp("hub"))
    proc, running = start_demo_hub(state_dir, {
        "storage": {"volume_name": f"rees-test{run_id}-{{username}}"},
    })
    yield running
    stop_demo_hub(proc, running)
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                              f"name=rees-test{run_id}-"], capture_output=True,
                             text=True).stdout.split()
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)


@pytest.fixture
def git_repo(tmp_path):
    """Factory: ``git_repo()`` makes a new empty repository under the test's tmp dir."""
    counter = iter(range(1000))
    return lambda: GitRepo(str(tmp_path / f"repo{next(counter)}"))
