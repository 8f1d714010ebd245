"""One real three-node Swarm, one Hub in multi-node mode and one environment built there,
shared by the tests of this folder (package scope: made before the first, removed after
the last, also after failures).

The Hub offers what the one-machine tests use too, so that each test module shows that
part working across nodes: profiles pinned to labelled nodes, add-on services, anonymous
launches with pools and templates, quotas.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid

import pytest

from tests.engine_support import pids_mentioning
from tests.helpers import (GitRepo, build_through_service, remove_built_images,
                           start_demo_hub, stop_demo_hub)
from tests.swarm_support import SwarmLab, run
from tljh_rees.demo import free_port
from tljh_rees.swarm.registry import CERTS_D

RUN = uuid.uuid4().hex[:6]
LARGE = "rees-swarm-size=large"  # worker w1's label; the "large" profile runs only there
DOOMED = "rees-swarm-fate=doomed"  # a worker that a test kills; the "doomed" profile's
SERVICES_NODE = "rees-swarm-services=yes"  # worker w2: add-on services that keep nothing


@pytest.fixture(scope="package")
def lab():
    swarm = SwarmLab(workers=2)
    try:
        swarm.label(swarm.workers[0].node_id, *LARGE.split("="))
        swarm.label(swarm.workers[1].node_id, *SERVICES_NODE.split("="))
        yield swarm
    finally:
        swarm.close()


@pytest.fixture(scope="package")
def swarm_hub(lab, base_image, tmp_path_factory):
    state_dir = str(tmp_path_factory.mktemp("swarm-hub"))
    port = free_port()
    registry = f"{lab.manager_address}:{port}"
    with open(os.path.join(state_dir, "rees_config.py"), "w") as f:
        f.write("c.PoolManager.interval = 0.5\n"
                "c.Culler.interval = 1\n"
                "c.Culler.launch_grace = 30\n")
    proc = hub = None
    try:
        proc, hub = start_demo_hub(state_dir, {
            "profiles": {"small": {"cpu": 1, "memory": "512M"},
                         "large": {"cpu": 1, "memory": "768M"},
                         "doomed": {"cpu": 1, "memory": "256M"}},
            "default_profile": "small",
            "storage": {"volume_name": f"rees-swarm{RUN}-{{username}}"},
            "anonymous": {"enabled": True, "max_servers": 3, "launches_per_hour": 20},
            "builders": ["builder"],
            "services": {"postgres": {"enabled": True},
                         "redis": {"enabled": True, "persistent": False}},
            "quotas": {"servers_per_user": 2},
            "templates": {"allowed_images": [base_image]},  # a plain image, not built here
            # the service's own GC rounds stay out of the way: test_gc_export runs
            # ``tljh-rees gc`` and checks what one round removes
            "gc": {"interval": 86400},
            "swarm": {"enabled": True, "registry_port": port,
                      "placement": {"large": [LARGE], "doomed": [DOOMED]},
                      "service_placement": [SERVICES_NODE]},
        })
        hub.registry = registry
        yield hub
    finally:
        if proc is not None:
            stop_demo_hub(proc, hub)
        for pid in pids_mentioning(os.path.join(state_dir, "rees", "swarm")):  # the registry
            os.kill(pid, signal.SIGKILL)
        remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))
        # what tasks on the manager pulled from the registry (by digest, untagged): only
        # those references go (by id, the helper and base images would go with them)
        pulled = {line for pattern in (f"{registry}/*/*", f"{registry}/*/*/*")
                  for line in run("docker", "images", "--digests", "--format",
                                  "{{.Repository}}@{{.Digest}}", "--filter",
                                  f"reference={pattern}").stdout.split()}
        if pulled:
            run("docker", "rmi", *pulled, check=False)
        shutil.rmtree(os.path.join(CERTS_D, registry), ignore_errors=True)
        volumes = run("docker", "volume", "ls", "-q", "--filter",
                      f"name=rees-swarm{RUN}-").stdout.split()
        # the JupyterLab extension's, filled on the manager if a server ran there
        volumes += run("docker", "volume", "ls", "-q", "--filter",
                       "name=rees-lab-").stdout.split()
        if volumes:
            run("docker", "volume", "rm", "-f", *volumes, check=False)


@pytest.fixture(scope="package")
def environment(swarm_hub, base_image, tmp_path_factory):
    """(name, build) of an environment built on the manager and pushed to the registry."""
    repo = GitRepo(str(tmp_path_factory.mktemp("swarm-repo")))
    name = f"swarm-env-{RUN}"
    build = build_through_service(swarm_hub, repo, base_image, {"marker.txt": "swarm\n"},
                                  name)
    swarm_hub.repo = repo
    return name, build
