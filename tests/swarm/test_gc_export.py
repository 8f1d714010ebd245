"""Disk garbage collection and SIF exports in multi-node mode, on the package's real swarm
(tests/swarm/conftest.py): ``tljh-rees gc`` removes the manager's images of an
environment the registry holds without making it unlaunchable, deletes the registry's
manifests of an old build and of a deleted environment through its HTTP API and frees
their blobs with ``docker-registry garbage-collect``; a worker still pulls the current
image, a server of it starts, and an export pulls the removed image back from the
registry.

Nothing is mocked: the registry is Debian's docker-registry the Hub runs (TLS from the
project's CA, its htpasswd user), the exports are the service's.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid

import requests

from tests.export_support import sif_objects
from tests.helpers import stop_server, wait_build, wait_for, wait_ready
from tests.swarm.conftest import RUN
from tests.swarm.test_core import (_registry_password, registry_ref, start,
                                   through_proxy)
from tests.swarm_support import run
from tljh_rees.swarm.registry_gc import MANIFEST_TYPES, folder_size, split_ref


def rees_dir(hub) -> str:
    return os.path.join(hub.state_dir, "rees")


def manifest_status(hub, ref: str) -> int:
    """HTTP status of the registry's manifest of ``ref`` (by digest), asked with the
    registry's own credentials and CA."""
    repository, digest = split_ref(ref, hub.registry)
    r = requests.head(f"https://{hub.registry}/v2/{repository}/manifests/{digest}",
                      headers={"Accept": MANIFEST_TYPES},
                      auth=("tljh-rees", _registry_password(hub)),
                      verify=os.path.join(rees_dir(hub), "swarm", "registry", "tls",
                                          "ca.crt"), timeout=30)
    return r.status_code


def gc(hub, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tljh_rees", "gc", "--state-dir", rees_dir(hub),
         "--config", os.path.join(hub.state_dir, "rees.yaml"),
         # only this run's environments (the engine is shared); every local image of them
         "--image-prefix", f"rees-swarm-env-{RUN}", "--max-image-bytes", "1",
         "--high", "99", "--low", "98", "--build-cache-hours", "0", "--keep-days", "0",
         *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _registry_password(hub) not in result.stdout + result.stderr
    return result.stdout


def image_id(hub, name: str) -> str:
    with sqlite3.connect(os.path.join(rees_dir(hub), "rees.sqlite")) as db:
        return db.execute("SELECT image_id FROM environments WHERE name = ?",
                          (name,)).fetchone()[0]


def local(image: str) -> bool:
    return run("docker", "image", "inspect", image, check=False).returncode == 0


def build(hub, repo, name: str) -> str:
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
    assert r.status_code in (200, 202), r.text
    done = wait_build(hub, r.json()["id"], timeout=600)
    assert done["status"] == "built", done
    return registry_ref(hub, name)


def wait_export(hub, export_id: str, timeout: float = 1500) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = hub.rees("GET", f"exports/{export_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"export not done in {timeout}s: {job}"
        time.sleep(2)


def test_gc_collects_the_registry_and_keeps_the_environment_launchable_and_exportable(
        lab, swarm_hub, environment, tmp_path):
    hub, (name, _) = swarm_hub, environment
    old = registry_ref(hub, name)
    # a second version of the environment; a copy of it in an environment then deleted
    hub.repo.commit({"gc.txt": f"{uuid.uuid4().hex}\n"})
    current = build(hub, hub.repo, name)
    assert current != old and manifest_status(hub, old) == 200
    doomed_env = f"{name}-gone"
    deleted = build(hub, hub.repo, doomed_env)
    r = hub.rees("DELETE", f"environments/{doomed_env}?force=true")
    assert r.status_code in (200, 204), r.text
    assert manifest_status(hub, deleted) == 200
    current_id = image_id(hub, name)
    storage = os.path.join(rees_dir(hub), "swarm", "registry", "data")
    before = folder_size(storage)

    # a dry run says what would go and removes nothing
    out = gc(hub, "--dry-run")
    for ref, why in ((old, f"an old build of {name}"),
                     (deleted, "its environment was deleted")):
        repository, digest = split_ref(ref, hub.registry)
        assert f"would remove registry-manifest {hub.registry}/{repository}@{digest}" in out
        assert why in out, out
    assert "would remove registry-blobs docker-registry garbage-collect" in out, out
    assert "{}/{}@{}".format(hub.registry, *split_ref(current, hub.registry)) not in out
    assert manifest_status(hub, old) == 200 and local(current_id)
    assert folder_size(storage) == before

    out = gc(hub)
    assert f"removed image rees-swarm-env-{RUN}" in out and \
        "(the registry keeps it: servers pull it from there)" in out, out
    assert not local(current_id)
    blobs = [line for line in out.splitlines()
             if line.startswith("removed registry-blobs")]
    assert len(blobs) == 1, out
    assert manifest_status(hub, old) == 404 and manifest_status(hub, deleted) == 404
    assert manifest_status(hub, current) == 200
    after = folder_size(storage)
    assert after < before, (before, after)
    print(f"registry storage {before} → {after} bytes; {blobs[0]}")
    # the catalog does not ask for a rebuild: servers pull from the registry
    shown = hub.rees("GET", f"environments/{name}").json()
    assert shown["status"] == "built" and shown["registry_image"] == current, shown

    # a worker still pulls the current image (its own credentials store: the machine's
    # docker config is other tests')
    worker = lab.workers[1]
    env = dict(worker.env, DOCKER_CONFIG=str(tmp_path / "docker-config"))
    login = subprocess.run(["docker", "login", "-u", "tljh-rees", "--password-stdin",
                            hub.registry], input=_registry_password(hub), env=env,
                           capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    pulled = subprocess.run(["docker", "pull", current], env=env, capture_output=True,
                            text=True, timeout=600)
    assert pulled.returncode == 0, pulled.stderr
    assert worker.docker("image", "inspect", "-f", "{{.Id}}", current).stdout.strip() == \
        current_id

    # a server of it starts (whichever node it lands on pulls it from the registry) and
    # answers through the proxy
    user = f"gcu{RUN}"
    r, token = start(hub, user, "s1", name, "small")
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, user, "s1", timeout=300)
    assert through_proxy(hub, user, "s1", token, "api/status").status_code == 200
    stop_server(hub, user, "s1", token=token)
    # it ran on the manager, which pulled it? Gone again, as GC left it (once the stopped
    # server's container is gone too)
    wait_for(lambda: not local(current_id) or run("docker", "rmi", current_id,
                                                  check=False).returncode == 0,
             60, "the manager's copy removed", every=1)

    # an export pulls the image back from the registry, and is of that very image
    r = hub.rees("POST", f"environments/{name}/exports", json={})
    assert r.status_code == 202, r.text
    job = wait_export(hub, r.json()["id"])
    assert job["status"] == "done", job
    assert job["steps"][0] == ("This machine no longer has the image; pulling "
                               f"{current} from the registry"), job["steps"]
    assert job["image_id"] == current_id and job["id"] == current_id.split(":", 1)[1]
    assert local(current_id)
    sif = os.path.join(rees_dir(hub), "exports", f"{job['id']}.sif")
    assert os.path.getsize(sif) == job["size"]
    assert sif_objects(sif)[-1]["type"] == "FS (Squashfs/*System/amd64)"
