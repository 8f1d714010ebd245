"""``tljh-rees client`` against a real demo Hub (``od_hub``: anonymous launches on), run as
a subprocess the way people run it, with the token in the environment. Nothing mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse

import requests

from tests.helpers import CommandLineWatcher, dockerfile_repo
from tljh_rees.demo import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = {"cpu": 0.5, "memory": "512M"}


def client(hub, *args, token=None, url=True, env_url=None,
           timeout=600) -> subprocess.CompletedProcess:
    """``tljh-rees client --url HUB ARGS`` with ``token`` (if any) in TLJH_REES_TOKEN and
    ``env_url`` in TLJH_REES_URL; nothing of the caller's own environment reaches it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TLJH_REES_TOKEN", "JUPYTERHUB_API_TOKEN", "TLJH_REES_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    if token:
        env["TLJH_REES_TOKEN"] = token
    if env_url:
        env["TLJH_REES_URL"] = env_url
    argv = [sys.executable, "-m", "tljh_rees", "client", *(["--url", hub.url] if url else []),
            *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def register(hub, name, od_environment, **fields):
    r = hub.rees("POST", "templates", json={"name": name, "image-name": od_environment,
                                            "limits": LIMITS, **fields})
    assert r.status_code == 201, r.text


def ready_url(result) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("ready: ")]
    return line.removeprefix("ready: ")


def test_build_prints_the_log_and_exits_by_the_outcome(od_hub, base_image, git_repo, unique):
    token = od_hub.user_token("builder")
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker=unique("client"))
    name = unique("cli-env")
    result = client(od_hub, "build", repo.url, "--name", name, token=token)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("build ") and f"of {name} at " in lines[0]
    phases = [line.split("]")[0][1:] for line in lines if line.startswith("[")]
    assert phases[-2:] == ["running", "built"], result.stdout
    assert "Using DockerBuildPack builder" in lines  # repo2docker's own lines
    assert lines[-1].startswith(f"built {name}: rees-{name}:")
    # the same again is a cache hit: built at once, nothing to follow
    again = client(od_hub, "build", repo.url, "--name", name, token=token)
    assert again.returncode == 0 and "built" in again.stdout.splitlines()[0], again.stdout

    repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo {unique('no')} && exit 3\n"})
    failed = client(od_hub, "--json", "build", repo.url, "--name", name, token=token)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    documents = [json.loads(line) for line in failed.stdout.splitlines()]
    assert {"type": "phase", "phase": "failed"}.items() <= documents[-2].items()
    assert documents[-1]["status"] == "failed" and documents[-1]["environment"] == name


def test_register_creates_refuses_a_second_and_updates(od_hub, od_environment, unique):
    token = od_hub.user_token("builder")
    name = unique("cli-course")
    result = client(od_hub, "register", name, "--image-name", od_environment, "--memory", "512M",
                    "--cpu", "0.5", "--cull-timeout", "600", "--allowed-user", "ada",
                    "--allowed-user", "clara", token=token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"registered template {name}: image {od_environment}")
    assert "limits 512M, 0.5 CPU" in result.stdout
    body = od_hub.rees("GET", f"templates/{name}").json()
    assert body["cull-timeout"] == 600 and body["allowed-users"] == ["ada", "clara"]
    assert body["owner"] == "builder" and body["anonymous"] is False

    again = client(od_hub, "register", name, "--image-name", od_environment, token=token)
    assert again.returncode == 1 and "exists" in again.stderr and "--update" in again.stderr

    update = client(od_hub, "register", name, "--update", "--max-age", "7200", "--anonymous",
                    token=token)
    assert update.returncode == 0 and update.stdout.startswith("updated"), update.stderr
    body = od_hub.rees("GET", f"templates/{name}").json()
    assert body["max-age"] == 7200 and body["anonymous"] is True
    assert body["cull-timeout"] == 600 and body["limits"] == {"memory": "512M", "cpu": 0.5}

    bad = client(od_hub, "register", unique("cli-bad"), "--image-name", od_environment,
                 "--memory", "9T", token=token)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: limits.memory: expected "), bad.stderr
    assert od_hub.rees("DELETE", f"templates/{name}").status_code == 204


def test_a_signed_in_launch_prints_the_server_url_and_status_shows_it(od_hub, od_environment,
                                                                     unique):
    name = unique("cli-lesson")
    register(od_hub, name, od_environment)
    token = od_hub.user_token("clara")
    try:
        result = client(od_hub, "launch", name, token=token)
        assert result.returncode == 0, result.stdout + result.stderr
        url = ready_url(result)
        assert url.startswith(f"{od_hub.url}/user/clara/")
        assert "token" not in result.stdout.lower()  # a signed-in server uses the Hub's login
        status = requests.get(f"{url}api/status", headers={"Authorization": f"token {token}"},
                              timeout=30)
        assert status.status_code == 200, status.text

        shown = client(od_hub, "status", token=token)
        assert shown.returncode == 0, shown.stderr
        assert name in shown.stdout and url in shown.stdout
        assert "Pools" not in shown.stdout  # not an admin: that part is left out
    finally:
        for app in od_hub.rees("GET", f"applications/{name}", token=token
                               ).json()["applications"]:
            od_hub.rees("DELETE", f"applications/{name}/{app['id']}", token=token)
        od_hub.rees("DELETE", f"templates/{name}")


def test_an_anonymous_launch_prints_its_location_and_token(od_hub, od_environment, unique):
    name = unique("cli-try")
    register(od_hub, name, od_environment, anonymous=True)
    result = client(od_hub, "launch", name, "--anonymous")  # no token at all
    app_id = token = None
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        url = ready_url(result)
        app_id = urllib.parse.urlsplit(url).path.split("/")[2]
        assert url == f"{od_hub.url}/user/{app_id}/" and app_id.startswith("anon-")
        token = result.stdout.splitlines()[-1]
        # the token is printed once, on a line of its own, never inside a command line
        assert result.stdout.count(token) == 1 and " " not in token
        status = requests.get(f"{url}api/status", headers={"Authorization": f"token {token}"},
                              timeout=30)
        assert status.status_code == 200, status.text
    finally:
        if app_id and token:  # frees its place under the anonymous caps
            r = requests.delete(f"{od_hub.service_url}/api/applications/{name}/{app_id}",
                                headers={"Authorization": f"token {token}"}, timeout=60)
            assert r.status_code == 202, r.text
        od_hub.rees("DELETE", f"templates/{name}")


def test_pools_are_sized_listed_and_deleted(od_hub, od_environment, unique):
    name = unique("cli-pool")
    register(od_hub, name, od_environment, anonymous=True)
    token = od_hub.token  # the Hub's admin
    try:
        sized = client(od_hub, "pools", name, "--size", "1", token=token)
        assert sized.returncode == 0, sized.stderr
        header, row = sized.stdout.splitlines()
        assert header.split() == ["template", "size", "available", "running", "starting",
                                  "claimed-last-hour"]
        assert row.split()[:2] == [name, "1"]

        listed = client(od_hub, "pools", token=token)
        assert listed.returncode == 0 and [name, "1"] in [line.split()[:2] for line in
                                                          listed.stdout.splitlines()]
        raw = client(od_hub, "pools", "--json", token=token)
        assert {"template": name, "size": 1}.items() <= \
            {p["template"]: p for p in json.loads(raw.stdout)["pools"]}[name].items()

        status = client(od_hub, "status", token=token)
        assert status.returncode == 0, status.stderr
        assert "Pools" in status.stdout and name in status.stdout.split("Pools")[1]
        (template_line,) = [line for line in status.stdout.split("Your applications")[0]
                            .splitlines() if line.startswith(name + " ")]
        assert template_line.split()[1:4] == [od_environment, "completed", "yes"]

        deleted = client(od_hub, "pools", name, "--delete", token=token)
        assert deleted.returncode == 0 and "deleted" in deleted.stdout, deleted.stderr
        gone = client(od_hub, "pools", name, token=token)
        assert gone.returncode == 1 and gone.stderr.startswith("error: "), gone.stderr
        builder = client(od_hub, "pools", name, "--size", "1",
                         token=od_hub.user_token("builder"))
        assert builder.returncode == 1 and "admins" in builder.stderr
    finally:
        od_hub.rees("DELETE", f"templates/{name}")


def test_the_token_never_comes_from_the_command_line(od_hub, tmp_path):
    missing = client(od_hub, "status")
    assert missing.returncode == 2
    assert "TLJH_REES_TOKEN" in missing.stderr and "--token-file" in missing.stderr
    for argv in (("--token", "x", "status"), ("status", "--token", "x")):
        refused = client(od_hub, *argv)
        assert refused.returncode == 2 and "usage:" in refused.stderr, argv
    # from a file (what --token-file names is a path, not the secret)
    path = tmp_path / "rees-token"
    path.write_text(od_hub.token + "\n")
    watcher = CommandLineWatcher(od_hub.token)
    try:
        from_file = client(od_hub, "--token-file", str(path), "status")
        from_env = client(od_hub, "status", token=od_hub.token)
    finally:
        found = watcher.stop()
    assert from_file.returncode == 0 and from_env.returncode == 0, from_file.stderr
    assert "Templates" in from_file.stdout
    assert found == []
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert client(od_hub, "--token-file", str(empty), "status").returncode == 2
    # the URL from the od_environment too; an unreachable one is named
    assert client(od_hub, "status", token=od_hub.token, url=False,
                  env_url=od_hub.url).returncode == 0
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = client(od_hub, "status", token="anything", url=False, env_url=nowhere)
    assert result.returncode == 1 and result.stderr.startswith(f"error: cannot reach {nowhere}")
