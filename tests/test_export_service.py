"""Export for HPC in the service, through the real demo Hub: job, progress, cache,
download, permissions."""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid

import pytest

from tests.test_export_support import registry, sif_objects, tiny_image  # noqa: F401 (fixtures)


@pytest.fixture
def private_env(tiny_image):
    """An environment image owned by alice and not public, as the builder labels them."""
    name = f"export-{uuid.uuid4().hex[:8]}"
    commit = hashlib.sha1(name.encode()).hexdigest()
    tag = f"rees-{name}:{commit[:12]}"
    dockerfile = (f"FROM {tiny_image}\nLABEL org.tljh-rees.environment={name} "
                  f"org.tljh-rees.owner=alice org.tljh-rees.public=false "
                  f"org.tljh-rees.commit={commit}\n")
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, text=True,
                   check=True, capture_output=True)
    yield name, tag, commit
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def wait_done(hub, export_id, token=None, timeout=180):
    deadline = time.monotonic() + timeout
    seen_steps = set()
    while time.monotonic() < deadline:
        job = hub.rees("GET", f"exports/{export_id}", token=token).json()
        seen_steps.add(job["step"])
        if job["status"] not in ("queued", "running"):
            return job, seen_steps
        time.sleep(0.3)
    raise AssertionError(f"export not done in {timeout}s: {job}")


def test_export_job_download_and_cache(hub, private_env, tmp_path):
    name, tag, commit = private_env
    alice = hub.user_token("alice")
    r = hub.rees("POST", f"environments/{name}/exports", token=alice, json={})
    assert r.status_code in (200, 202), r.text
    job = r.json()
    assert job["environment"] == name and job["image"] == tag
    job, steps = wait_done(hub, job["id"], token=alice)
    assert job["status"] == "done", job
    assert any("mksquashfs" in s for s in steps if s), steps  # progress was visible
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


def test_export_manager_pushes_to_its_registry(private_env, registry, tmp_path):
    """With ``ExportManager.push_registry`` set, each export also goes to that registry."""
    import asyncio

    from tests.test_export_support import pull_sif, sha256
    from tljh_rees.app import ReesService
    from tljh_rees.engine.catalog import list_environments
    from tljh_rees.export.jobs import ExportManager

    name, tag, commit = private_env
    service = ReesService(state_dir=str(tmp_path / "state"))
    service.config.ExportManager.push_registry = f"oras://{registry.host}/hpc"

    async def export():
        manager = ExportManager.of(service)
        env = list_environments(service.docker_api())[name]
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
