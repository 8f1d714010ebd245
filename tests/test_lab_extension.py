"""The JupyterLab extension's server half, in a real server started by the Hub: it reads
the folder on the server's disk and reaches the service with the server's token, whose
scopes the Hub cuts to the owner's."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.helpers import lab_folder, put_file, server_container, stop_server, wait_build, \
    wait_for, wait_ready


@pytest.fixture(scope="module")
def servers(hub):
    """Default servers (the site's base image) of a builder and of a reader."""
    started = {}
    for name in ("builder", "labreader"):
        token = hub.user_token(name)
        r = hub.request("POST", f"/hub/api/users/{name}/server", token=token)
        assert r.status_code in (201, 202), r.text
        started[name] = token
    for name, token in started.items():
        wait_ready(hub, name, token=token)
    yield started
    for name, token in started.items():
        stop_server(hub, name, "", token=token)


def lab(hub, user, token, method, path, **kwargs):
    return hub.request(method, f"/user/{user}/rees-lab/{path}", token=token, **kwargs)


def test_status_says_who_may_build(hub, servers):
    builder = lab(hub, "builder", servers["builder"], "GET", "status").json()
    assert builder["available"] and builder["can_build"], builder
    assert builder["name"] == "builder"
    assert builder["prefix"] == "/services/rees/"
    reader = lab(hub, "labreader", servers["labreader"], "GET", "status").json()
    assert reader["available"] and reader["can_build"] is False, reader
    assert "custom:rees:build" in reader["build_reason"]


def test_server_token_has_the_owners_build_permission_only(hub, servers):
    """The Hub intersects the server role's scopes with the owner's."""
    for user, may in (("builder", True), ("labreader", False)):
        env = server_container(hub, user, "").attrs["Config"]["Env"]
        token = next(e.split("=", 1)[1] for e in env if e.startswith("JUPYTERHUB_API_TOKEN="))
        me = hub.rees("GET", "user", token=token)
        assert me.status_code == 200, me.text
        assert me.json()["can_build"] is may
        # the token is the server's: it may not start servers or act as an admin
        assert hub.request("POST", f"/hub/api/users/{user}/servers/x",
                           token=token).status_code == 403


def test_inspect_lists_rees_files_and_what_is_left_out(hub, servers, base_image, unique):
    token = servers["builder"]
    folder = unique("inspect")
    lab_folder(hub, "builder", token, folder, base_image)
    r = lab(hub, "builder", token, "POST", "inspect", json={"path": folder})
    assert r.status_code == 200, r.text
    check = r.json()
    assert check["rees_files"] == ["Dockerfile"]
    assert check["buildpack"] == "DockerBuildPack", check
    assert check["replaces"] is False
    f = check["folder"]
    assert sorted(f["paths"]) == [".gitignore", "Dockerfile", "hello.ipynb", "keep.log"]
    assert sorted(f["ignored"]) == ["data/", "run.log"]
    # nothing was saved
    assert hub.rees("GET", f"specs/{folder}").status_code == 404


def test_bad_paths_and_names_are_refused(hub, servers, unique):
    token = servers["builder"]
    for path, status, words in (("../..", 400, "outside"), ("/etc", 404, "not a folder"),
                                ("no-such-folder", 404, "not a folder"),
                                (7, 400, "path")):
        r = lab(hub, "builder", token, "POST", "inspect", json={"path": path})
        assert r.status_code == status, (path, r.text)
        assert words in r.json()["error"]
    empty = unique("empty")
    put_file(hub, "builder", token, empty, None, kind="directory")
    r = lab(hub, "builder", token, "POST", "inspect", json={"path": empty})
    assert r.status_code == 400 and "no files" in r.json()["error"]
    r = lab(hub, "builder", token, "POST", "build", json={"path": ".", "name": "Bad Name"})
    assert r.status_code == 400 and "name" in r.json()["error"]


def test_reader_cannot_build_through_the_server(hub, servers, base_image, unique):
    token = servers["labreader"]
    folder = unique("nobuild")
    lab_folder(hub, "labreader", token, folder, base_image)
    r = lab(hub, "labreader", token, "POST", "build", json={"path": folder, "name": folder})
    assert r.status_code == 403, r.text
    assert "build permission" in r.json()["error"]
    assert hub.rees("GET", f"specs/{folder}").status_code == 404


def test_build_makes_a_spec_version_and_streams_its_log(hub, servers, base_image, unique):
    token = servers["builder"]
    folder = unique("labenv")
    lab_folder(hub, "builder", token, folder, base_image)
    r = lab(hub, "builder", token, "POST", "build",
            json={"path": folder, "name": folder, "description": "From JupyterLab",
                  "public": True})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["spec"] == folder
    assert started["links"]["launch"] == f"/services/rees/launch/{folder}"
    build = started["build"]
    events = lab(hub, "builder", token, "GET", f"builds/{build['id']}/events",
                 stream=True)
    assert events.headers["Content-Type"].startswith("text/event-stream")
    phases = [json.loads(line[5:])["phase"] for line in events.iter_lines(decode_unicode=True)
              if line.startswith("data:") and '"phase"' in line]
    assert phases[-1] == "built", phases
    assert wait_build(hub, build["id"])["status"] == "built"
    spec = hub.rees("GET", f"specs/{folder}").json()
    assert spec["owner"] == "builder"
    files = hub.request("GET", f"/services/rees/api/specs/{folder}/zip")
    names = zipfile.ZipFile(io.BytesIO(files.content)).namelist()
    assert sorted(n.split("/", 1)[1] for n in names if not n.endswith("/")) == [
        ".gitignore", "Dockerfile", "hello.ipynb", "keep.log"]
    env = hub.rees("GET", f"environments/{folder}").json()
    assert env["public"] is True and env["description"] == "From JupyterLab"
    # the same folder again is a new version of the same spec
    put_file(hub, "builder", token, f"{folder}/more.txt", "more\n")
    again = lab(hub, "builder", token, "POST", "build", json={"path": folder, "name": folder})
    assert again.status_code == 202, again.text
    assert again.json()["version"] != started["version"]
    assert wait_build(hub, again.json()["build"]["id"])["status"] == "built"


def test_a_failing_build_ends_its_stream_with_the_reason(hub, servers, base_image, unique):
    token = servers["builder"]
    folder = unique("labfail")
    put_file(hub, "builder", token, folder, None, kind="directory")
    put_file(hub, "builder", token, f"{folder}/Dockerfile",
             f"FROM {base_image}\nRUN echo 'no such package' && false\n")
    r = lab(hub, "builder", token, "POST", "build", json={"path": folder, "name": folder})
    assert r.status_code == 202, r.text
    events = lab(hub, "builder", token, "GET", f"builds/{r.json()['build']['id']}/events",
                 stream=True)
    data = [json.loads(line[5:]) for line in events.iter_lines(decode_unicode=True)
            if line.startswith("data:")]
    assert data[-1]["phase"] == "failed", data[-3:]
    assert any("no such package" in (d.get("message") or "") for d in data)
    # the files stay on the service as a spec version, to fix in the composer
    assert hub.rees("GET", f"specs/{folder}").json()["owner"] == "builder"


def _connections_to(container, port: int) -> int:
    """Established TCP connections from the server's network namespace to ``port``."""
    out = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"]).output.decode()
    fields = (line.split() for line in out.splitlines()[1:] if line.strip())
    return sum(1 for f in fields if len(f) > 3 and f[3] == "01"
               and f[2].rsplit(":", 1)[-1] == f"{port:04X}")


def test_a_browser_that_leaves_ends_the_relay_to_the_service(hub, servers, base_image,
                                                             unique):
    """Closing the tab closes the server's request to the service within a keepalive
    (1 s here), not when the build ends."""
    token = servers["builder"]
    folder = unique("labgone")
    put_file(hub, "builder", token, folder, None, kind="directory")
    put_file(hub, "builder", token, f"{folder}/Dockerfile",
             f"FROM {base_image}\nRUN sleep 120\n")
    r = lab(hub, "builder", token, "POST", "build", json={"path": folder, "name": folder})
    assert r.status_code == 202, r.text
    build_id = r.json()["build"]["id"]
    container = server_container(hub, "builder", "")
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"] if "=" in e)
    port = int(env["TLJH_REES_ADDRESS"].rsplit(":", 1)[1])
    try:
        events = lab(hub, "builder", token, "GET", f"builds/{build_id}/events", stream=True)
        lines = events.iter_lines()  # kept: a dropped generator closes the response
        assert next(lines) is not None  # the relay is under way
        assert _connections_to(container, port) == 1
        events.close()
        wait_for(lambda: _connections_to(container, port) == 0, 20,
                 "the server's request to the service ends")
    finally:
        hub.rees("DELETE", f"builds/{build_id}")
    assert wait_build(hub, build_id)["status"] in ("cancelled", "failed")
