"""The builds API against a real Hub, service, git, repo2docker and Docker engine."""

import json
import time
import uuid

import docker
import pytest
import requests

from tests.helpers import (CommandLineWatcher, dockerfile_repo, slow_repo, sse_events,
                           wait_build, wait_running)


def test_build_dockerfile_repo_then_cache_hit(hub, unique, git_repo, base_image):
    repo = git_repo()
    sha = dockerfile_repo(repo, base_image, marker="first")
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": unique("hello-env")})
    assert r.status_code == 202, r.text
    build = r.json()
    assert build["commit"] == sha and build["environment"] == unique("hello-env")
    done = wait_build(hub, build["id"])
    assert done["status"] == "built", done
    image = docker.from_env().images.get(done["image"])
    labels = image.labels
    assert labels["org.tljh-rees.commit"] == sha
    assert labels["org.tljh-rees.repo"] == repo.url
    assert labels["org.tljh-rees.build_id"] == build["id"]
    # who owns it and who may see it are the catalog's, never the image's to say
    assert not {"org.tljh-rees.owner", "org.tljh-rees.public"} & set(labels)

    events = sse_events(hub, build["id"])
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases[0] == "queued" and phases[-1] == "built"
    assert any("COPY" in e.get("message", "") for e in events if e["type"] == "log")
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # resuming after an event replays only what came later
    later = sse_events(hub, build["id"], last_id=ids[2])
    assert [e["id"] for e in later] == ids[3:]

    again = hub.rees("POST", "builds", json={"repo": repo.url, "name": unique("hello-env")})
    assert again.status_code == 200
    assert again.json()["status"] == "built" and again.json()["cache_hit"] is True

    env = hub.rees("GET", "environments/" + unique("hello-env")).json()
    assert env["status"] == "built" and env["commit"] == sha and env["image"] == done["image"]
    listed = hub.rees("GET", "environments", params={"q": unique("hello-env")}).json()
    assert [e["name"] for e in listed["environments"]] == [unique("hello-env")]
    assert listed["total"] == 1 and listed["next"] is None


@pytest.mark.parametrize("body,field", [
    ({"repo": "ftp://example.org/x"}, "repo"),
    ({"repo": "/etc"}, None),  # allowed in the demo (allow_local_repos): fails to read
    ({"repo": "https://"}, "repo"),
    ({"repo": "https://example.org/x", "ref": "--upload-pack=evil"}, "ref"),
    ({"repo": "https://example.org/x", "ref": "main\nx"}, "ref"),
    ({"repo": "https://example.org/x", "name": "Bad Name!"}, "name"),
    ({"repo": "https://example.org/x", "profile": "huge"}, "profile"),
    ({"repo": "https://example.org/x", "image": "evil"}, None),
    ({}, None),
])
def test_bad_input_is_a_json_4xx_naming_the_field(hub, unique, body, field):
    r = hub.rees("POST", "builds", json=body)
    assert 400 <= r.status_code < 500, r.text
    error = r.json()
    assert error["status"] == r.status_code and error["error"]
    if field:
        assert error["field"] == field, error
    if "image" in body:
        assert "image" in error["error"] and "Unknown field" in error["error"]


def test_oversized_and_malformed_bodies(hub):
    r = hub.rees("POST", "builds", data="{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = hub.rees("POST", "builds", data=json.dumps({"repo": "x" * 100_000}))
    assert r.status_code == 413


def test_user_without_build_scope_cannot_build(hub, unique, git_repo, base_image):
    token = hub.user_token("reader")
    r = hub.rees("POST", "builds", token=token, json={"repo": "https://example.org/x"})
    assert r.status_code == 403 and "build permission" in r.json()["error"]
    assert hub.rees("GET", "environments", token=token).status_code == 200


def test_refs_resolve_to_full_commits(hub, unique, git_repo, base_image):
    repo = git_repo()
    first = dockerfile_repo(repo, base_image, marker="v1")
    repo.git("tag", "-a", "v1.0", "-m", "release")
    repo.git("checkout", "-q", "-b", "feature")
    second = repo.commit({"marker.txt": "feature\n"})
    repo.git("checkout", "-q", "main")
    for ref, expected in (("v1.0", first), ("feature", second), (second, second),
                          ("main", first), ("", first)):
        r = hub.rees("POST", "builds", json={"repo": repo.url, "ref": ref, "name": unique("refs-env")})
        assert r.status_code in (200, 202), r.text
        assert wait_build(hub, r.json()["id"])["commit"] == expected, ref
    # a short sha is resolved after cloning
    r = hub.rees("POST", "builds", json={"repo": repo.url, "ref": second[:8], "name": unique("refs-env")})
    assert wait_build(hub, r.json()["id"])["commit"] == second
    r = hub.rees("POST", "builds", json={"repo": repo.url, "ref": "no-such-branch",
                                         "name": unique("refs-env")})
    assert r.status_code == 422 and r.json()["field"] == "ref"


def test_identical_concurrent_requests_join_one_build(hub, unique, git_repo, base_image):
    from concurrent.futures import ThreadPoolExecutor

    repo = git_repo()
    slow_repo(repo, base_image, seconds=3, marker="joined")
    body = {"repo": repo.url, "name": unique("join-env")}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: hub.rees("POST", "builds", json=body), range(8)))
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1, [r.text for r in responses]
    build = wait_build(hub, ids.pop())
    assert build["status"] == "built"
    logs = [e for e in sse_events(hub, build["id"]) if e["type"] == "log"]
    assert sum("joined" in e["message"] and "echo" in e["message"] for e in logs) == 1


def test_queue_order_cap_and_cancel(hub, unique, git_repo, base_image):
    """concurrency is 1 in the demo: the second build waits at position 1, FIFO."""
    a, b, c = git_repo(), git_repo(), git_repo()
    slow_repo(a, base_image, seconds=120, marker="a")
    slow_repo(b, base_image, seconds=1, marker="b")
    slow_repo(c, base_image, seconds=1, marker="c")
    first = hub.rees("POST", "builds", json={"repo": a.url, "name": unique("queue-a")}).json()
    wait_running(hub, first['id'])
    second = hub.rees("POST", "builds", json={"repo": b.url, "name": unique("queue-b")}).json()
    third = hub.rees("POST", "builds", json={"repo": c.url, "name": unique("queue-c")}).json()
    assert second["status"] == "queued" and second["queue_position"] == 1
    assert third["queue_position"] == 2

    # cancel the queued one: it never runs, the next moves up
    cancelled = hub.rees("DELETE", f"builds/{second['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert hub.rees("GET", f"builds/{third['id']}").json()["queue_position"] == 1
    # cancel the running one: repo2docker and its buildx build stop
    time.sleep(3)  # let it reach the RUN step
    cancelled = hub.rees("DELETE", f"builds/{first['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert hub.rees("GET", "environments/" + unique("queue-a")).json()["image"] is None
    assert wait_build(hub, third["id"])["status"] == "built"
    assert hub.rees("DELETE", f"builds/{first['id']}").status_code == 409


def test_cancelled_rebuild_keeps_the_earlier_image(hub, unique, git_repo, base_image):
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="stable")
    first = wait_build(hub, hub.rees("POST", "builds",
                                     json={"repo": repo.url, "name": unique("keep-env")}).json()["id"])
    assert first["status"] == "built"
    slow_repo(repo, base_image, seconds=120, marker="never")
    second = hub.rees("POST", "builds", json={"repo": repo.url, "name": unique("keep-env")}).json()
    wait_running(hub, second['id'])
    assert hub.rees("DELETE", f"builds/{second['id']}").json()["status"] == "cancelled"
    env = hub.rees("GET", "environments/" + unique("keep-env")).json()
    assert env["image"] == first["image"] and env["commit"] == first["commit"]
    docker.from_env().images.get(first["image"])  # still there


def test_delete_environment_conflicts_while_a_server_runs(hub, unique, git_repo, base_image):
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="deleteme")
    build = wait_build(hub, hub.rees("POST", "builds",
                                     json={"repo": repo.url, "name": unique("del-env")}).json()["id"])
    client = docker.from_env()
    container = client.containers.run(
        build["image"], "sleep 60", detach=True, remove=True,
        labels={"org.tljh-rees.server-environment": unique("del-env")},
        name=f"{hub.container_prefix()}deltest")
    try:
        r = hub.rees("DELETE", "environments/" + unique("del-env"))
        assert r.status_code == 409 and "force=true" in r.json()["error"]
        assert hub.rees("DELETE", "environments/" + unique("del-env") + "?force=true").status_code == 204
    finally:
        container.remove(force=True)
    assert hub.rees("GET", "environments/" + unique("del-env")).status_code == 404
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(build["image"])


def test_private_repo_credentials_never_leak(hub, unique, git_repo, base_image, tmp_path):
    import subprocess

    from tests.githttp import PrivateGitServer

    secret = "s3cr3t+t0ken/with%chars"
    src = git_repo()
    dockerfile_repo(src, base_image, marker="private")
    bare = tmp_path / "srv" / "private.git"
    bare.parent.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", src.path, str(bare)], check=True)
    with PrivateGitServer(str(bare.parent), "alice", secret) as server:
        url = f"{server.url}/private.git"
        watcher = CommandLineWatcher(secret)
        r = hub.rees("POST", "builds", json={"repo": url, "name": unique("private-env"),
                                             "credentials": {"username": "alice",
                                                             "password": secret}})
        assert r.status_code == 202, r.text
        build = wait_build(hub, r.json()["id"])
        assert watcher.stop() == [], "the secret showed in a process's command line"
        assert watcher.git_commands_seen > 0
        assert build["status"] == "built", build
        assert server.authorized_requests > 0
        # without credentials the same repository is refused, naming the field
        r = hub.rees("POST", "builds", json={"repo": url, "name": unique("private-env2")})
        assert r.status_code == 422 and r.json()["field"] == "repo"

    forms = {secret, requests.utils.quote(secret, safe=""), secret.replace("/", "%2F")}
    places = {
        "api": json.dumps(hub.rees("GET", f"builds/{build['id']}").json())
        + json.dumps(hub.rees("GET", "environments/" + unique("private-env")).json()),
        "events": json.dumps(sse_events(hub, build["id"])),
        "labels": json.dumps(docker.from_env().images.get(build["image"]).labels),
        "history": subprocess.run(["docker", "history", "--no-trunc", build["image"]],
                                   capture_output=True, text=True).stdout,
    }
    state = hub.state_dir
    for root, _, files in __import__("os").walk(state):
        for name in files:
            with open(f"{root}/{name}", "rb") as f:
                places[f"{root}/{name}"] = f.read().decode("latin-1")
    for place, text in places.items():
        for form in forms:
            assert form not in text, f"secret found in {place}"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_service_restart_mid_build_requeues_it(hub, unique, git_repo, base_image, how):
    import os
    import signal

    repo = git_repo()
    slow_repo(repo, base_image, seconds=8, marker=f"restart-{how}")
    build = hub.rees("POST", "builds", json={"repo": repo.url,
                                             "name": unique(f"restart-{how.lower()}")}).json()
    wait_running(hub, build['id'])
    time.sleep(2)
    pid = hub.request("GET", "/hub/api/services").json()["rees"]["pid"]
    os.kill(pid, getattr(signal, how))
    # JupyterHub starts its managed service again; the build is picked up again
    deadline = time.monotonic() + 60
    while True:
        try:
            if hub.request("GET", "/hub/api/services").json()["rees"]["pid"] not in (pid, 0):
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the service was not restarted"
        time.sleep(0.5)
    done = wait_build(hub, build["id"])
    assert done["status"] == "built", done
    messages = [e.get("message", "") for e in sse_events(hub, build["id"])]
    assert any("re-queued after a restart" in m for m in messages)


def test_live_events_reach_a_listener_while_building(hub, unique, git_repo, base_image):
    """A listener connected during the build sees lines as they come, then the end."""
    repo = git_repo()
    repo.commit({"Dockerfile": f"FROM {base_image}\n"
                               f"RUN echo {uuid.uuid4().hex} && "
                               "for i in 1 2 3 4 5; do echo tick-$i; sleep 1; done\n"})
    build = hub.rees("POST", "builds", json={"repo": repo.url, "name": unique("live-env")}).json()
    wait_running(hub, build['id'])
    events = sse_events(hub, build["id"])
    # BuildKit may hand several output lines over in one chunk: count the ticks themselves
    ticks = sum(e["message"].count("tick-") for e in events if e["type"] == "log")
    assert ticks >= 5  # each echoed line (the RUN line itself shows "tick-$i" once more)
    assert events[-1]["type"] == "phase" and events[-1]["phase"] == "built"


def test_patch_is_one_step_and_every_path_obeys_it(hub, unique, git_repo, base_image):
    """Making an environment private is a change of the catalog alone (no image is
    rebuilt or relabelled), and the API, launches and the Hub's spawner all obey it."""
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="labels")
    name = unique("label-env")
    build = wait_build(hub, hub.rees("POST", "builds", json={"repo": repo.url,
                                                             "name": name}).json()["id"])
    image_id = docker.from_env().images.get(build["image"]).id
    other_name = unique("outsider")
    other = hub.user_token(other_name)
    assert hub.rees("GET", f"environments/{name}", token=other).status_code == 200
    r = hub.rees("PATCH", f"environments/{name}",
                 json={"public": False, "description": "now private"})
    assert r.status_code == 200, r.text
    assert r.json()["public"] is False and r.json()["description"] == "now private"
    assert docker.from_env().images.get(build["image"]).id == image_id
    assert hub.rees("GET", f"environments/{name}", token=other).status_code == 404
    r = hub.rees("POST", "applications", token=other, json={"environment": name})
    assert r.status_code == 404
    # straight through the Hub's API: the spawner asks the same catalog
    r = hub.request("POST", f"/hub/api/users/{other_name}/servers/sneak", token=other,
                    json={"environment": name})
    assert r.status_code == 404 and "no environment" in r.json()["message"]
    r = hub.rees("PATCH", f"environments/{name}", json={"public": "yes"})
    assert r.status_code == 400 and r.json()["field"] == "public"
    r = hub.rees("PATCH", f"environments/{name}", json={"profile": None})
    assert r.status_code == 200 and r.json()["profile"] is None


def test_same_commit_under_another_name_reuses_the_image(hub, unique, git_repo, base_image):
    repo = git_repo()
    repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo {uuid.uuid4().hex} && sleep 2\n"})
    first = wait_build(hub, hub.rees("POST", "builds", json={
        "repo": repo.url, "name": unique("twin-a")}).json()["id"])
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": unique("twin-b"),
                                         "description": "the twin"})
    assert r.status_code == 200 and r.json()["cache_hit"] and r.json()["status"] == "built"
    twin = docker.from_env().images.get(r.json()["image"])
    original = docker.from_env().images.get(first["image"])
    assert twin.id == original.id  # the same image under a second tag: no build ran
    env = hub.rees("GET", "environments/" + unique("twin-b")).json()
    assert env["description"] == "the twin" and env["status"] == "built"


def test_a_quiet_build_step_keeps_the_event_stream_to_its_end(hub, unique, git_repo,
                                                              base_image):
    """The stream sends keepalive comments while a step prints nothing (1 s in the test Hub,
    from its rees_config.py), and still ends with the final phase: it used to drop the
    listener at the first keepalive."""
    repo = git_repo()
    repo.commit({"Dockerfile": f"FROM {base_image}\n"
                               f"RUN echo quiet-{uuid.uuid4().hex} && sleep 5 && echo awake\n"})
    build = hub.rees("POST", "builds", json={"repo": repo.url, "name": unique("quiet")}).json()
    wait_running(hub, build["id"])
    keepalives, last = 0, None
    with requests.get(f"{hub.service_url}/api/builds/{build['id']}/events", stream=True,
                      headers={"Authorization": f"token {hub.token}"}, timeout=120) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith(": keepalive"):
                keepalives += 1
            elif line.startswith("data: "):
                last = json.loads(line[6:])
    assert keepalives >= 2, "no keepalive was sent while the step was quiet"
    assert last["type"] == "phase" and last["phase"] == "built", last
