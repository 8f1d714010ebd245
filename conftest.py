"""Shared fixtures: a real Docker engine, the local base image, a real demo Hub.

Nothing here is mocked: the Hub is ``tljh-rees demo`` (JupyterHub + proxy + the rees
service + DockerSpawner) on free ports, and repositories are local git repos.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.helpers import (GitRepo, build_through_service, remove_built_images,
                           start_demo_hub, stop_demo_hub)
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
def git_host(tmp_path_factory):
    """A public git server on 127.0.0.1 standing in for GitHub, GitLab and gist hosts:
    ``git_host.publish("org/repo", path)`` publishes a work tree at ``url/org/repo``."""
    from tests.githttp import PublicGitServer

    root = tmp_path_factory.mktemp("git-host")
    with PublicGitServer(str(root)) as server:
        yield server


@pytest.fixture(scope="session")
def zenodo():
    """A stand-in of Zenodo and of the DOI resolver on 127.0.0.1 (tests.archive_fakes)."""
    from tests.archive_fakes import DoiResolver, FakeZenodo

    resolver = DoiResolver()
    archive = FakeZenodo(resolver)
    yield archive
    archive.close()
    resolver.close()


@pytest.fixture(scope="session")
def hub(base_image, tmp_path_factory, git_host, zenodo):
    """One demo Hub for the session (volumes are per test run, so runs don't share files)."""
    run_id = uuid.uuid4().hex[:6]
    state_dir = str(tmp_path_factory.mktemp("hub"))
    datasets = tmp_path_factory.mktemp("datasets")
    (datasets / "survey.csv").write_text("site,count\nnorth,12\n")
    datasets.chmod(0o755)  # readable by the servers' user, as an admin's dataset would be
    with open(os.path.join(state_dir, "rees_config.py"), "w") as f:  # the admin's own file
        f.write("c.ReesService.engine_sync_interval = 2\n"
                "c.ReesService.event_keepalive = 1\n"
                # the Zenodo stand-in: on loopback, which archives may not be by default
                f"c.ArchiveProvider.doi_resolver_url = {zenodo.doi.url!r}\n"
                f"c.ZenodoProvider.base_url = {zenodo.url!r}\n"
                "c.ArchiveProvider.public_addresses_only = False\n")
    proc, running = start_demo_hub(state_dir, {
        "data_mounts": {"datasets": {"source": str(datasets), "target": "/data/datasets",
                                     "readonly": True}},
        "storage": {"volume_name": f"rees-test{run_id}-{{username}}"},
        "builders": ["builder"],  # a non-admin user with the build permission
        "admins": ["reesadmin"],  # administers environments, but is no Hub admin
        "binder": {"base_urls": {"gh": git_host.url, "gl": git_host.url,
                                 "gist": git_host.url},
                   "cors_allow_origin": "https://docs.example.org"},
    })
    yield running
    stop_demo_hub(proc, running)
    remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                              f"name=rees-test{run_id}-"], capture_output=True,
                             text=True).stdout.split()
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)


@pytest.fixture(scope="session")
def od_hub(base_image, tmp_path_factory):
    """A demo Hub with anonymous launches on (the session's ``hub`` has them off) and the
    on-demand loops quickened; tests/test_ondemand.py and tests/test_client.py share it."""
    state_dir = str(tmp_path_factory.mktemp("ondemand-hub"))
    run = uuid.uuid4().hex[:6]
    with open(os.path.join(state_dir, "rees_config.py"), "w") as f:
        f.write("c.PoolManager.interval = 0.5\n"
                "c.Culler.interval = 1\n"
                "c.Culler.launch_grace = 30\n")
    proc, hub = start_demo_hub(state_dir, {
        "anonymous": {"enabled": True, "max_servers": 3, "launches_per_hour": 2},
        "storage": {"volume_name": f"rees-od{run}-{{username}}"},
        "builders": ["builder"],
        # add-on services (tests/test_services_launch.py): PostgreSQL keeps its data
        "services": {"postgres": {"enabled": True},
                     "redis": {"enabled": True, "persistent": False}},
    })
    hub.run = run
    yield hub
    stop_demo_hub(proc, hub)
    remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))
    for kind, prefix in (("volume", f"rees-od{run}-"), ("network", hub.container_prefix())):
        names = subprocess.run(["docker", kind, "ls", "-q", "--filter", f"name={prefix}"],
                               capture_output=True, text=True).stdout.split()
        if names:
            subprocess.run(["docker", kind, "rm", *(["-f"] if kind == "volume" else []),
                            *names], capture_output=True)


@pytest.fixture(scope="session")
def od_environment(od_hub, base_image, tmp_path_factory):
    """A built environment on ``od_hub``, for templates to use."""
    repo = GitRepo(str(tmp_path_factory.mktemp("od-repo")))
    name = f"od-env-{od_hub.run}"
    build_through_service(od_hub, repo, base_image, {"marker.txt": "on demand\n"}, name)
    return name


@pytest.fixture(scope="session")
def run_id():
    """A short id unique to this test run, for names shared on the engine."""
    return uuid.uuid4().hex[:6]


@pytest.fixture
def unique(run_id):
    """``unique("name")`` gives a name no other test run uses (environments, users)."""
    return lambda name: f"{name}-{run_id}"


@pytest.fixture
def git_repo(tmp_path):
    """Factory: ``git_repo()`` makes a new empty repository under the test's tmp dir."""
    counter = iter(range(1000))
    return lambda: GitRepo(str(tmp_path / f"repo{next(counter)}"))
