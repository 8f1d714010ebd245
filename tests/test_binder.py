"""Binder links against the real Hub, proxy, service, repo2docker and Docker, with a local
git server standing in for GitHub, GitLab and gist hosts: BinderHub's event stream field
for field, its providers, and who may build through a link."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid

import pytest
import requests

from tests.helpers import dockerfile_repo, server_container, wait_build

SHA = re.compile(r"^[0-9a-f]{40}$")


def events(hub, path, token=None, accept="text/event-stream", timeout=300):
    """The data of every event of a ``build/…`` stream (it ends on ready or failed)."""
    headers = {"Authorization": f"token {token or hub.token}"}
    if accept:
        headers["Accept"] = accept
    found = []
    with requests.get(f"{hub.service_url}/{path}", headers=headers, stream=True,
                      timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
                if found[-1].get("phase") in ("ready", "failed"):
                    break
    return found


@pytest.fixture(scope="module")
def published(git_host, git_repo, base_image):
    """A repository at ``<git host>/binder-<run>/demo`` (as on GitHub) and, the same, at
    ``<git host>/group/sub/demo.git`` (as on GitLab)."""
    run = uuid.uuid4().hex[:8]
    repo = git_repo()
    sha = dockerfile_repo(repo, base_image, marker=f"binder {run}")
    repo.commit({"index.ipynb": json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                            "nbformat_minor": 5})})
    sha = repo.git("rev-parse", "HEAD")
    org = f"binder-{run}"
    git_host.publish(f"{org}/demo", repo.path)
    git_host.publish(f"group-{run}/sub/demo.git", repo.path)
    return {"org": org, "group": f"group-{run}/sub/demo", "sha": sha, "repo": repo,
            "url": git_host.url}


@pytest.fixture(scope="module")
def git_repo_module(tmp_path_factory):
    from tests.helpers import GitRepo

    root = tmp_path_factory.mktemp("binder-repos")
    counter = iter(range(100))
    return lambda: GitRepo(str(root / f"repo{next(counter)}"))


@pytest.fixture(scope="module")
def git_repo(git_repo_module):  # noqa: F811 (module-scoped for the module fixture above)
    return git_repo_module


def test_a_link_builds_launches_and_answers_as_binderhub_does(hub, published):
    spec = f"{published['org']}/demo/HEAD"
    found = events(hub, f"build/gh/{spec}")
    phases = [e["phase"] for e in found]
    assert phases[0] == "waiting" and phases[-1] == "ready", found[-1]
    assert phases.index("built") < phases.index("launching") < len(phases) - 1
    built = next(e for e in found if e["phase"] == "built")
    ready = found[-1]
    assert ready["image"] == built["imageName"]
    assert ready["repo_url"] == f"{published['url']}/{published['org']}/demo"
    assert ready["binder_ref_url"] == f"{ready['repo_url']}/tree/{published['sha']}"
    assert ready["binder_request"] == f"v2/gh/{spec}"
    assert ready["binder_persistent_request"] == \
        f"v2/gh/{published['org']}/demo/{published['sha']}"
    assert ready["binder_launch_host"] == f"{hub.url}/services/rees/"
    assert ready["url"].startswith(f"{hub.url}/user/admin/binder-gh-") and \
        ready["url"].endswith("/")
    assert ready["message"] == f"server running at {ready['url']}\n"
    # the token is what a client on another page uses, and it opens only this server
    token = {"Authorization": f"token {ready['token']}"}
    r = requests.get(f"{ready['url']}api/status", headers=token, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(f"{ready['url']}api/contents", params={"token": ready["token"]},
                     timeout=30)  # as BinderHub clients open it: ?token= in the URL
    assert r.status_code == 200 and "index.ipynb" in r.text, r.text
    assert requests.get(f"{hub.url}/hub/api/users", headers=token, timeout=30).status_code \
        == 403
    r = hub.request("GET", "/hub/api/user", token=ready["token"])
    server = ready["url"].split("/user/")[1].rstrip("/")
    scopes = set(r.json()["scopes"]) - {"read:users:name!user=admin",
                                        "read:users:groups!user=admin"}  # who it is
    assert scopes == {f"access:servers!server={server}"}

    # pages on the allowed site may drive its kernels (rees.binder.cors_allow_origin)
    container = server_container(hub, "admin", server.split("/")[1])
    assert "--ServerApp.allow_origin=https://docs.example.org" in container.attrs["Args"]
    assert "JUPYTERHUB_ALLOW_TOKEN_IN_URL=1" in container.attrs["Config"]["Env"]

    # the same link again: answered from the cache, the running server reused
    again = events(hub, f"build/gh/{spec}")
    assert [e["phase"] for e in again][0] == "built"
    assert again[-1]["phase"] == "ready" and again[-1]["url"] == ready["url"]
    name = ready["url"].rstrip("/").rsplit("/", 1)[1]
    hub.request("DELETE", f"/hub/api/users/admin/servers/{name}", json={"remove": True})


def test_gitlab_and_git_links_with_escaped_specs(hub, published):
    group = urllib.parse.quote(published["group"], safe="")
    found = events(hub, f"build/gl/{group}/HEAD?build_only=true")
    assert found[-1]["phase"] == "ready" and "url" not in found[-1], found[-1]
    assert found[-1]["imageName"]
    url = urllib.parse.quote(f"{published['url']}/{published['org']}/demo", safe="")
    found = events(hub, f"build/git/{url}/{published['sha']}?build_only=true")
    assert found[-1]["phase"] == "ready", found[-1]


@pytest.mark.parametrize("path,status,text", [
    ("build/nope/a/b/c", 404, "no provider 'nope'"),
    ("build/gh/only-two/parts", 400, "gh/<user>/<repo>/<ref>"),
    ("build/gh/ghost/none/HEAD", 422, "cannot read the repository"),
])
def test_bad_links_are_failed_events_naming_the_problem(hub, path, status, text):
    found = events(hub, path)
    assert len(found) == 1 and found[0]["phase"] == "failed", found
    assert found[0]["status_code"] == status and text in found[0]["message"], found[0]


def test_the_stream_wants_event_stream_clients(hub, published):
    found = events(hub, f"build/gh/{published['org']}/demo/HEAD", accept="application/json")
    assert found == [{"phase": "failed", "status_code": 400,
                      "message": "Missing Accept header: text/event-stream\n"}]
    r = requests.get(f"{hub.service_url}/build/gh/{published['org']}/demo/HEAD", timeout=30,
                     headers={"Accept": "text/event-stream"})  # no login, no token
    assert r.status_code == 200 and '"status_code": 403' in r.text


def test_who_may_build_through_a_link(hub, published, git_host, git_repo, base_image):
    """Readers launch what is built; only builders have a new version built."""
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker=f"fresh {uuid.uuid4().hex}")
    path = f"{published['org']}/fresh"
    git_host.publish(path, repo.path)
    reader = hub.user_token("reader")
    found = events(hub, f"build/gh/{path}/HEAD?build_only=true", token=reader)
    assert found[-1]["phase"] == "failed" and found[-1]["status_code"] == 403
    assert "build permission" in found[-1]["message"]
    builder = hub.user_token("builder")
    assert events(hub, f"build/gh/{path}/HEAD?build_only=true",
                  token=builder)[-1]["phase"] == "ready"
    assert events(hub, f"build/gh/{path}/HEAD?build_only=true",
                  token=reader)[-1]["phase"] == "ready"
    # a repository built on the Environments page needs no second build for its link
    other = git_repo()
    dockerfile_repo(other, base_image, marker=f"page first {uuid.uuid4().hex}")
    url = git_host.publish(f"{published['org']}/page-first", other.path)
    r = hub.rees("POST", "builds", json={"repo": url, "name": f"page-{uuid.uuid4().hex[:6]}"})
    assert wait_build(hub, r.json()["id"])["status"] == "built"
    found = events(hub, f"build/gh/{published['org']}/page-first/HEAD?build_only=true",
                   token=reader)
    assert found[-1]["phase"] == "ready" and found[0]["phase"] == "built", found


def test_providers_badge_and_cross_origin_headers(hub):
    r = requests.get(f"{hub.service_url}/api/repoproviders", timeout=30)
    assert r.status_code == 200
    providers = r.json()
    assert [p["id"] for p in providers][:4] == ["gh", "gist", "git", "gl"]
    gh = providers[0]
    assert gh == {"displayName": "GitHub", "id": "gh",
                  "spec": {"validateRegex": "[^/]+/[^/]+/.+"},
                  "repo": {"label": "GitHub repository name or URL",
                           "placeholder": "example: binder-examples/requirements",
                           "urlEncode": False},
                  "ref": {"enabled": True, "default": "HEAD"}}
    assert r.headers["Access-Control-Allow-Origin"] == "https://docs.example.org"
    pre = requests.options(f"{hub.service_url}/build/gh/a/b/HEAD", timeout=30,
                           headers={"Origin": "https://docs.example.org"})
    assert pre.status_code == 204 and "authorization" in \
        pre.headers["Access-Control-Allow-Headers"]
    badge = requests.get(f"{hub.service_url}/badge_logo.svg", timeout=30)
    assert badge.status_code == 200 and badge.headers["Content-Type"] == "image/svg+xml"
    assert b"launch" in badge.content and b"binder" in badge.content


def test_binderhubs_own_client_reaches_a_running_server(hub, published):
    """BinderHub's JavaScript client (npm @jupyterhub/binderhub-client, run by Node as a
    page would run it) follows the stream to a server and computes where to land."""
    import os
    import subprocess

    script = os.path.join(os.path.dirname(__file__), "binder-client", "drive.mjs")
    spec = f"gh/{published['org']}/demo/HEAD"
    run = subprocess.run(["node", script, f"{hub.service_url}/build/", spec, hub.token,
                          "labpath=index.ipynb"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    ready = next(e for e in lines if e.get("phase") == "ready")
    redirect = lines[-1]["redirect"]
    assert redirect == f"{ready['url']}doc/tree/index.ipynb?token={ready['token']}"
    r = requests.get(f"{ready['url']}api/contents/index.ipynb",
                     params={"token": ready["token"]}, timeout=30)
    assert r.status_code == 200 and r.json()["type"] == "notebook"
    name = ready["url"].rstrip("/").rsplit("/", 1)[1]
    hub.request("DELETE", f"/hub/api/users/admin/servers/{name}", json={"remove": True})


def test_a_zenodo_link_builds_and_launches_the_records_files(hub, zenodo, base_image):
    """An archive link through the service: the DOI resolved (on stand-ins of doi.org and
    Zenodo), the record fetched into the build, and its files in the launched server."""
    record = str(300000 + uuid.uuid4().int % 100000)
    zenodo.publish(record, {
        "Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n".encode(),
        "data/survey.csv": b"site,count\nnorth,12\n"})
    found = events(hub, f"build/zenodo/10.5281/zenodo.{record}")
    assert found[-1]["phase"] == "ready", found[-1]
    assert any("Zenodo" in (e.get("message") or "") for e in found)  # the fetch's own lines
    ready = found[-1]
    assert ready["binder_persistent_request"] == f"v2/zenodo/10.5281/zenodo.{record}"
    r = requests.get(f"{ready['url']}api/contents/data/survey.csv", timeout=30,
                     params={"token": ready["token"]})
    assert r.status_code == 200 and "north,12" in r.json()["content"]
    name = ready["url"].rstrip("/").rsplit("/", 1)[1]
    hub.request("DELETE", f"/hub/api/users/admin/servers/{name}", json={"remove": True})
