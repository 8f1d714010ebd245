"""Export for HPC in the service, through the real demo Hub: job, progress, cache,
download, permissions."""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid

import pytest

from tests.export_support import sif_objects


@pytest.fixture
def private_env(hub, git_repo, tiny_image):
    """A private environment of the user 'builder', built by the service from a tiny image
    (returns its name, image tag and commit)."""
    from tests.helpers import wait_build

    name = f"export-{uuid.uuid4().hex[:8]}"
    repo = git_repo()
    commit = repo.commit({"Dockerfile": f"FROM {tiny_image}\nLABEL purpose={name}\n"})
    builder = hub.user_token("builder")
    r = hub.rees("POST", "builds", token=builder,
                 json={"repo": repo.url, "name": name, "public": False})
    build = wait_build(hub, r.json()["id"], token=builder)
    assert build["status"] == "built", build
    yield name, build["image"], commit
    hub.rees("DELETE", f"environments/{name}?force=true")


def wait_done(hub, export_id, token=None, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = hub.rees("GET", f"exports/{export_id}", token=token).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"export not done in {timeout}s: {job}")


def test_export_job_download_and_cache(hub, private_env, tmp_path):
    name, tag, commit = private_env
    owner = hub.user_token("builder")
    reader = hub.user_token("alice")  # may see and fetch public exports, not start them
    hub.rees("PATCH", f"environments/{name}", token=owner, json={"public": True})
    r = hub.rees("POST", f"environments/{name}/exports", token=reader, json={})
    assert r.status_code == 403 and "build permission" in r.json()["error"]
    hub.rees("PATCH", f"environments/{name}", token=owner, json={"public": False})
    alice = owner
    r = hub.rees("POST", f"environments/{name}/exports", token=alice, json={})
    assert r.status_code in (200, 202), r.text
    job = r.json()
    assert job["environment"] == name and job["image"] == tag
    job = wait_done(hub, job["id"], token=alice)
    assert job["status"] == "done", job
    assert any("squashfs" in step for step in job["steps"]), job["steps"]  # progress shown
    assert job["filename"] == f"{name}-{commit[:12]}.sif"
    assert job["commands"]["run"] == f"apptainer run {job['filename']}"
    assert job["download_url"] in job["commands"]["download"]
    assert "$JUPYTERHUB_API_TOKEN" in job["commands"]["download"]

    r = hub.request("GET", job["download_url"], token=alice)
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == f'attachment; filename="{job["filename"]}"'
    assert hashlib.sha256(r.content).hexdigest() == job["sha256"]
    assert len(r.content) == job["size"]
    sif = tmp_path / job["filename"]
    sif.write_bytes(r.content)
    assert sif_objects(str(sif))[-1]["type"] == "FS (Squashfs/*System/amd64)"

    # the same image is exported once: a second request answers from the cache
    again = hub.rees("POST", f"environments/{name}/exports", token=alice, json={})
    assert again.status_code == 200
    assert again.json()["id"] == job["id"] and again.json()["status"] == "done"
    listed = hub.rees("GET", f"environments/{name}/exports", token=alice).json()["exports"]
    assert [j["id"] for j in listed] == [job["id"]]

    # the admin sees it too; another user sees neither the environment nor its export
    assert hub.rees("GET", f"exports/{job['id']}").status_code == 200
    bob = hub.user_token("bob")
    for method, path in (("POST", f"environments/{name}/exports"),
                         ("GET", f"exports/{job['id']}"),
                         ("GET", f"exports/{job['id']}/download")):
        r = hub.rees(method, path, token=bob, json={} if method == "POST" else None)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["status"] == 404

    # the page with the button
    page = hub.request("GET", f"/services/rees/environments/{name}/export", token=alice)
    assert page.status_code == 200
    assert "Export for HPC" in page.text


def test_export_of_unknown_environment(hub):
    r = hub.rees("POST", "environments/no-such-environment/exports", json={})
    assert r.status_code == 404
    assert r.json()["field"] == "name"
    r = hub.rees("POST", "environments/no-such-environment/exports", json={"x": 1})
    assert r.status_code == 400


@pytest.fixture
def labelled_image(tiny_image):
    """An image as a build makes one, without the service (for ExportManager alone)."""
    name = f"export-{uuid.uuid4().hex[:8]}"
    commit = hashlib.sha1(name.encode()).hexdigest()
    tag = f"rees-{name}:{commit[:12]}"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, check=True,
                   input=f"FROM {tiny_image}\nLABEL org.tljh-rees.commit={commit}\n",
                   capture_output=True)
    yield name, tag, commit
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_export_manager_pushes_public_environments_to_its_registry(labelled_image, registry,
                                                                    tmp_path):
    """With ``ExportManager.push_registry`` set, each export of a public environment also
    goes to that registry; a private one never does."""
    import asyncio

    import docker

    from tests.export_support import pull_sif, sha256
    from tljh_rees.export.jobs import ExportManager
    from tljh_rees.store.models import Environment

    name, tag, commit = labelled_image
    api = docker.APIClient(version="auto")
    # the shared registry gets public environments only
    env = Environment(name=name, image=tag, image_id=api.inspect_image(tag)["Id"],
                      commit=commit, public=True)

    async def export():
        manager = ExportManager(lambda: api, str(tmp_path / "exports"),
                                push_registry=f"oras://{registry.host}/hpc")
        job = manager.start(env)
        while job["status"] in ("queued", "running"):
            await asyncio.sleep(0.2)
        return manager, job

    manager, job = asyncio.run(export())
    assert job["status"] == "done", job
    assert job["pushed_to"] == f"oras://{registry.host}/hpc/{name}:{commit[:12]}"
    assert job["pull_command"] == f"apptainer pull --no-https {job['pushed_to']}"
    pulled = pull_sif(registry.host, f"hpc/{name}", commit[:12], str(tmp_path / "pulled"))
    assert sha256(pulled) == job["sha256"] == sha256(manager.sif_path(job["id"]))
    assert manager.record(job["id"])["sha256"] == job["sha256"]  # kept across restarts
