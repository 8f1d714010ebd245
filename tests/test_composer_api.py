"""The specs API against the real demo Hub: compose, validate, preview, save, version,
download, import, fork, and build an advanced (Dockerfile) spec for real."""

from __future__ import annotations

import io
import time
import uuid
import zipfile

import docker


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def wait_build(hub, build_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        build = hub.rees("GET", f"builds/{build_id}").json()
        if build["status"] in ("built", "failed", "cancelled"):
            return build
        time.sleep(0.5)
    raise AssertionError(f"build {build_id} did not finish in {timeout}s")


def test_compose_validate_save_and_version(hub):
    name = unique("analysis")
    bad = {"requirements": "numpy\npandas=2\n", "apt": "curl\nBad Name\n",
           "runtime": "python-3.12\n"}

    r = hub.rees("POST", "specs/validate", json={"sections": bad})
    assert r.status_code == 200 and r.json()["valid"] is False
    assert [(p["file"], p["line"]) for p in r.json()["problems"]] == [
        ("requirements.txt", 2), ("apt.txt", 2)]

    r = hub.rees("POST", "specs", json={"name": name, "sections": bad})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "sections" and "requirements.txt line 2" in r.json()["error"]
    assert len(r.json()["problems"]) == 2
    assert hub.rees("GET", f"specs/{name}").status_code == 404  # nothing half-written

    good = {"requirements": "numpy\npandas==2.2\n", "apt": "curl\n", "runtime": "python-3.12\n",
            "extensions": "jupyterlab-git\n"}
    r = hub.rees("POST", "specs", json={"name": name, "sections": good,
                                        "display_name": "My analysis"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert r.headers["Location"].endswith(f"/api/specs/{name}")
    assert first["owner"] == "admin" and first["sections"]["apt"] == "curl\n"
    assert {f["path"] for f in first["files"]} == {
        "requirements.txt", "apt.txt", "runtime.txt", "jupyter-extensions.txt", "postBuild"}

    r = hub.rees("PUT", f"specs/{name}", json={
        "sections": {**good, "apt": "curl\nwget\n"}, "base_version": first["version"],
        "message": "add wget"})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["version"] != first["version"]
    # a save from the old version would overwrite the new one: refused
    r = hub.rees("PUT", f"specs/{name}", json={"sections": good,
                                               "base_version": first["version"]})
    assert r.status_code == 409 and r.json()["field"] == "base_version"
    # a failed save keeps the newest version as it was
    r = hub.rees("PUT", f"specs/{name}", json={"sections": {**good, "runtime": "python\n"}})
    assert r.status_code == 422 and r.json()["problems"][0]["file"] == "runtime.txt"
    assert hub.rees("GET", f"specs/{name}").json()["version"] == second["version"]

    versions = hub.rees("GET", f"specs/{name}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [second["version"], first["version"]]
    assert versions[0]["message"] == "add wget" and versions[0]["author"] == "admin"
    old = hub.rees("GET", f"specs/{name}?version={first['version']}").json()
    assert old["sections"]["apt"] == "curl\n"

    listed = hub.rees("GET", "specs").json()["specs"]
    assert name in [s["name"] for s in listed]

    # the preview is repo2docker's: build pack and generated Dockerfile
    preview = hub.rees("GET", f"specs/{name}/preview").json()
    assert preview["buildpack"] == "PythonBuildPack"
    assert "--no-install-recommends curl wget" in preview["dockerfile"]
    assert "RUN ./postBuild" in preview["dockerfile"]
    draft = hub.rees("POST", "specs/preview", json={
        "spec": name, "sections": {"dockerfile": "FROM example.org/x\n"}}).json()
    assert draft["buildpack"] == "DockerBuildPack" and draft["dockerfile"] == "FROM example.org/x\n"


def test_zip_download_and_imports(hub):
    name = unique("zipped")
    r = hub.rees("POST", "specs", json={"name": name, "sections": {
        "requirements": "numpy\n", "postBuild": "#!/bin/bash\necho hi\n"}})
    assert r.status_code == 201, r.text
    r = hub.rees("GET", f"specs/{name}/zip")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    assert "attachment" in r.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(n for n in archive.namelist() if not n.endswith("/")) == [
        f"{name}/postBuild", f"{name}/requirements.txt"]

    copy = unique("imported")
    r = hub.rees("POST", f"specs/import?name={copy}", data=r.content,
                 headers={"Content-Type": "application/zip"})
    assert r.status_code == 201, r.text
    assert r.json()["sections"]["requirements"] == "numpy\n"
    assert {f["path"]: f["executable"] for f in r.json()["files"]} == {
        "postBuild": True, "requirements.txt": False}

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("../../etc/cron.d/evil", "x")
    r = hub.rees("POST", f"specs/import?name={unique('evil')}", data=buffer.getvalue(),
                 headers={"Content-Type": "application/zip"})
    assert r.status_code == 400 and r.json()["field"] == "file"
    assert "outside" in r.json()["error"]

    folder = unique("folder")
    r = hub.rees("POST", f"specs/import?name={folder}",
                 files=[("file", ("a", b"curl\n")), ("file", ("b", b"{}"))],
                 data={"path": ["proj/apt.txt", "proj/notebooks/a.ipynb"]})
    assert r.status_code == 201, r.text
    assert r.json()["sections"]["apt"] == "curl\n"
    assert [f["path"] for f in r.json()["files"]] == ["apt.txt", "notebooks/a.ipynb"]


def test_reading_is_open_composing_needs_the_build_permission(hub):
    name = unique("shared")
    assert hub.rees("POST", "specs", json={"name": name, "sections": {
        "apt": "curl\n"}}).status_code == 201
    reader = hub.user_token(unique("reader"))
    assert hub.rees("GET", "specs", token=reader).status_code == 200
    spec = hub.rees("GET", f"specs/{name}", token=reader)
    assert spec.status_code == 200 and spec.json()["may_edit"] is False
    assert hub.rees("GET", f"specs/{name}/zip", token=reader).status_code == 200
    for method, path, body in [
            ("POST", "specs", {"name": unique("mine"), "sections": {}}),
            ("PUT", f"specs/{name}", {"sections": {"apt": "git\n"}}),
            ("DELETE", f"specs/{name}", None),
            ("POST", "specs/validate", {"sections": {}}),
            ("POST", f"specs/{name}/builds", {})]:
        r = hub.rees(method, path, token=reader, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert "build permission" in r.json()["error"]
    assert hub.rees("GET", f"specs/{name}").json()["sections"]["apt"] == "curl\n"


def test_dockerfile_spec_is_built_and_forked_from_its_environment(hub, base_image):
    name = unique("advanced")
    environment = unique("composed-env")
    dockerfile = (f"FROM {base_image}\n"
                  "COPY --chown=1000:1000 . /home/jovyan/\n")
    r = hub.rees("POST", "specs", json={"name": name, "sections": {
        "dockerfile": dockerfile, "requirements": "numpy\n"}})
    assert r.status_code == 201, r.text
    spec = r.json()
    assert [p["section"] for p in spec["problems"]] == ["requirements"]  # ignored: said so

    r = hub.rees("POST", f"specs/{name}/builds", json={"environment": environment})
    assert r.status_code == 202, r.text
    build = wait_build(hub, r.json()["id"])
    assert build["status"] == "built", build
    assert build["commit"] == spec["version"] and build["environment"] == environment

    env = hub.rees("GET", f"environments/{environment}").json()
    assert env["spec_name"] == name and env["spec_version"] == spec["version"]
    client = docker.from_env()
    content = client.containers.run(build["image"], ["cat", "/home/jovyan/Dockerfile"],
                                    entrypoint=[], remove=True)
    assert content.decode() == dockerfile

    # a new spec from the environment's files
    fork = unique("from-env")
    r = hub.rees("POST", "specs", json={"name": fork, "from_environment": environment})
    assert r.status_code == 201, r.text
    assert r.json()["sections"]["dockerfile"] == dockerfile
    assert r.json()["sections"]["requirements"] == "numpy\n"
    assert environment in r.json()["forked_from"]
