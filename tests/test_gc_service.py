"""The service's own garbage collector, on a Hub of its own with a byte cap: images go
oldest first while the service runs, the environment shows as missing, and a launch of
it builds it again (and the cap then takes the next oldest)."""

from __future__ import annotations

import os
import time
import uuid

import docker
import pytest

from tests.helpers import (GitRepo, remove_built_images, start_demo_hub, stop_demo_hub,
                           wait_build, wait_for)



@pytest.fixture(scope="module")
def capped_hub(tiny_image, tmp_path_factory):
    run = uuid.uuid4().hex[:6]
    size = docker.from_env().images.get(tiny_image).attrs["Size"]
    state_dir = str(tmp_path_factory.mktemp("gc-hub"))
    with open(os.path.join(state_dir, "rees_config.py"), "w") as f:
        # only this module's images: other Hubs share the engine
        f.write(f"c.GarbageCollector.image_prefix = 'rees-gc{run}-'\n"
                "c.ReesService.engine_sync_interval = 2\n")
    proc, hub = start_demo_hub(state_dir, {
        # room for one environment's image, not two
        "gc": {"max_image_bytes": int(size * 1.5), "interval": 2},
    })
    hub.run = run
    yield hub
    stop_demo_hub(proc, hub)
    remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))


def status(hub, name):
    return hub.rees("GET", f"environments/{name}").json()["status"]


def test_the_cap_removes_the_oldest_and_a_launch_builds_it_again(capped_hub, tiny_image,
                                                                 tmp_path):
    hub = capped_hub
    names = [f"gc{hub.run}-first", f"gc{hub.run}-second"]
    for name in names:
        repo = GitRepo(str(tmp_path / name))
        repo.commit({"Dockerfile": f"FROM {tiny_image}\nCOPY marker.txt /marker.txt\n",
                     "marker.txt": f"{name} {uuid.uuid4().hex}\n"})
        r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
        assert r.status_code == 202, r.text
        assert wait_build(hub, r.json()["id"])["status"] == "built"
        time.sleep(1.1)  # the order is by build time
    first, second = names
    wait_for(lambda: status(hub, first) == "missing", 30, "the oldest image is collected")
    assert status(hub, second) == "built"
    # a launch of the collected one builds it again, as its owner, at its commit
    r = hub.rees("POST", "applications", json={"environment": first})
    assert r.status_code == 409 and "being built again" in r.json()["error"], r.text
    rebuild = hub.rees("GET", "builds", params={"environment": first}).json()["builds"][0]
    assert wait_build(hub, rebuild["id"])["status"] == "built"
    wait_for(lambda: status(hub, second) == "missing", 30, "now the other one is the oldest")
    assert status(hub, first) == "built"
    # the counter moves once the round that removed it is over (the catalog knew before)
    wait_for(lambda: removed_images_total(hub) >= 2, 30, "the counter counts both")


def removed_images_total(hub) -> float:
    metrics = hub.request("GET", "/services/rees/metrics").text
    removed = [line for line in metrics.splitlines()
               if line.startswith("rees_gc_removed_images_total ")]
    assert len(removed) == 1, metrics[:2000]
    return float(removed[0].split()[1])
