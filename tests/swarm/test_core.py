"""Multi-node mode on a real three-node Swarm (tests/swarm/conftest.py): builds pushed to
the registry the Hub runs, servers on labelled workers reached through the proxy, a
user's files on their home node, a worker that dies, a registry that is down.

Nothing is mocked: the manager is the machine's engine, the workers are engines in
their own network namespaces, the registry is Debian's docker-registry with TLS from the
project's CA, the Hub is ``tljh-rees demo``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

import requests

from tests.engine_support import pids_mentioning
from tests.helpers import stop_server, wait_build, wait_for, wait_ready
from tests.swarm.conftest import DOOMED, LARGE, RUN
from tests.swarm_support import run
from tljh_rees.hubconfig import LAB_EXTENSION_PATH
from tljh_rees.swarm.lab import volume_name as lab_volume


def registry_ref(hub, name: str) -> str:
    """Where the environment's image is in the registry, as the API says (and recorded)."""
    with sqlite3.connect(os.path.join(hub.state_dir, "rees", "rees.sqlite")) as db:
        row = db.execute("SELECT registry_ref FROM environments WHERE name = ?",
                         (name,)).fetchone()
    shown = hub.rees("GET", f"environments/{name}").json()["registry_image"]
    assert shown == (row[0] if row else None)
    return shown or ""


def start(hub, user: str, server: str, environment: str, profile: str):
    token = hub.user_token(user)
    r = hub.request("POST", f"/hub/api/users/{user}/servers/{server}", token=token,
                    json={"environment": environment, "profile": profile})
    return r, token


def service_node(lab, user: str, server: str) -> str:
    tasks = run("docker", "service", "ps", "--filter", "desired-state=running",
                "--format", "{{.Node}}", f"rees-swarm-{user}--{server}").stdout.split()
    assert len(tasks) == 1, tasks
    return tasks[0]


def through_proxy(hub, user, server, token, path, method="GET", **kwargs):
    return hub.request(method, f"/user/{user}/{server}/{path}", token=token, **kwargs)


def test_build_pushes_and_a_pinned_server_runs_on_its_worker(lab, swarm_hub, environment):
    name, _ = environment
    ref = registry_ref(swarm_hub, name)
    assert ref.startswith(f"{swarm_hub.registry}/rees/rees-{name}:") and "@sha256:" in ref
    # the registry really holds it (TLS with the project's CA, its own credentials)
    worker = lab.workers[1]
    assert worker.docker("pull", ref, check=False).returncode != 0  # no credentials
    user = f"ann{RUN}"
    r, token = start(swarm_hub, user, "s1", name, "large")
    assert r.status_code in (201, 202), r.text
    # the progress the Hub shows names the node (the ready event; also a step before it)
    events = progress(swarm_hub, user, "s1", token)
    assert "(on node rees-swarm-w1 (" in events, events
    wait_ready(swarm_hub, user, "s1", timeout=300)
    assert service_node(lab, user, "s1") == "rees-swarm-w1"  # the one labelled large
    # the profile's memory is reserved and limited, its CPUs limited; placed by label and
    # on the node that holds the volume; the image is the registry's, by digest
    spec = json.loads(run("docker", "service", "inspect", f"rees-swarm-{user}--s1").stdout)[0]
    task = spec["Spec"]["TaskTemplate"]
    assert task["Resources"]["Limits"] == {"NanoCPUs": 10**9, "MemoryBytes": 768 * 2**20}
    assert task["Resources"]["Reservations"] == {"MemoryBytes": 768 * 2**20}
    assert task["Placement"]["Constraints"] == [f"node.labels.{LARGE.replace('=', '==')}",
                                                f"node.id=={lab.workers[0].node_id}"]
    assert task["ContainerSpec"]["Image"] == ref
    assert task["RestartPolicy"]["Condition"] == "none"
    # volumes only, no folder of the Hub's machine: the user's, and the JupyterLab
    # extension's (filled on the node from its image in the registry), read-only
    mounts = [(m["Type"], m["Source"], m.get("ReadOnly", False))
              for m in task["ContainerSpec"]["Mounts"]]
    assert mounts == [("volume", f"rees-swarm{RUN}-{user}", False),
                      ("volume", lab_volume(LAB_EXTENSION_PATH), True)], mounts
    status = through_proxy(swarm_hub, user, "s1", token, "api/status")
    assert status.status_code == 200, status.text
    # the extension works there: its server half is loaded and reaches the service at
    # the manager's swarm address, with the server's token (ann may not build)
    extension = through_proxy(swarm_hub, user, "s1", token, "rees-lab/status")
    assert extension.status_code == 200, extension.text
    assert extension.json()["available"] is True, extension.json()
    assert extension.json()["can_build"] is False, extension.json()
    # a file in the user's volume, on the node that holds it
    put = through_proxy(swarm_hub, user, "s1", token, "api/contents/work/notes.txt",
                        method="PUT", json={"type": "file", "format": "text",
                                            "content": "kept on my node\n"})
    assert put.status_code in (200, 201), put.text
    stop_server(swarm_hub, user, "s1", token=token)
    assert run("docker", "service", "inspect", f"rees-swarm-{user}--s1",
               check=False).returncode != 0
    # the next server (a profile with no placement) is put where the files are
    r, token = start(swarm_hub, user, "s2", name, "small")
    assert r.status_code in (201, 202), r.text
    wait_ready(swarm_hub, user, "s2", timeout=300)
    assert service_node(lab, user, "s2") == "rees-swarm-w1"
    got = through_proxy(swarm_hub, user, "s2", token, "api/contents/work/notes.txt")
    assert got.status_code == 200 and got.json()["content"] == "kept on my node\n", got.text
    stop_server(swarm_hub, user, "s2", token=token)


def test_a_worker_that_dies(lab, swarm_hub, environment):
    """A worker of its own (labelled for the "doomed" profile) dies: the other tests of
    this folder keep their two workers."""
    name, _ = environment
    doomed = lab.add_worker("wd")
    lab.label(doomed.node_id, *DOOMED.split("="))
    user = f"bob{RUN}"
    r, token = start(swarm_hub, user, "s1", name, "doomed")
    assert r.status_code in (201, 202), r.text
    wait_ready(swarm_hub, user, "s1", timeout=300)
    assert service_node(lab, user, "s1") == "rees-swarm-wd"
    doomed.kill()
    wait_for(lambda: lab.node_state(doomed.node_id) == "down", 60, "wd down")
    # the Hub finds the server stopped (its poll asks where the task runs)
    wait_for(lambda: "s1" not in swarm_hub.request(
        "GET", f"/hub/api/users/{user}", token=token).json()["servers"]
        or not swarm_hub.request("GET", f"/hub/api/users/{user}",
                                 token=token).json()["servers"]["s1"]["ready"],
        90, "the Hub notices the server is gone", every=1)
    # and its service is removed: nothing runs it again if the node comes back
    wait_for(lambda: run("docker", "service", "inspect", f"rees-swarm-{user}--s1",
                         check=False).returncode != 0, 30, "bob's service is removed")
    # its files are on the dead node: a clear refusal, not an empty folder elsewhere
    r, _ = start(swarm_hub, user, "s2", name, "small")
    assert "Your files are on node rees-swarm-wd" in failure(r, swarm_hub, user, "s2", token)
    # the doomed profile's only node is gone: said at once, with Swarm's reason
    carol = f"carol{RUN}"
    r, ctoken = start(swarm_hub, carol, "s1", name, "doomed")
    assert "No node can take this server now: no suitable node" in failure(
        r, swarm_hub, carol, "s1", ctoken)
    # a new launch goes elsewhere
    r, ctoken = start(swarm_hub, carol, "s2", name, "small")
    assert r.status_code in (201, 202), r.text
    wait_ready(swarm_hub, carol, "s2", timeout=300)
    assert service_node(lab, carol, "s2") != "rees-swarm-wd"
    assert through_proxy(swarm_hub, carol, "s2", ctoken, "api/status").status_code == 200
    stop_server(swarm_hub, carol, "s2", token=ctoken)
    run("docker", "node", "rm", "--force", doomed.node_id)  # as an admin would


def failure(r, hub, user, server, token) -> str:
    """Why a start failed: the Hub's answer, or (a start slower than the Hub's
    slow_spawn_timeout is answered 202 first) its progress stream."""
    if r.status_code >= 400:
        return r.text
    assert r.status_code in (201, 202), r.text
    return progress(hub, user, server, token)


def progress(hub, user, server, token) -> str:
    """The Hub's progress stream of a starting server, until it ends."""
    return requests.get(f"{hub.url}/hub/api/users/{user}/servers/{server}/progress",
                        headers={"Authorization": f"token {token}"}, timeout=300).text


def test_join_command_adds_a_worker_that_trusts_the_registry(lab, swarm_hub, environment):
    printed = run(sys.executable, "-m", "tljh_rees", "swarm", "join-command", "--config",
                  os.path.join(swarm_hub.state_dir, "rees.yaml"), "--state-dir",
                  os.path.join(swarm_hub.state_dir, "rees")).stdout
    lines = printed.splitlines()
    assert lines[0] == f"mkdir -p /etc/docker/certs.d/{swarm_hub.registry}"
    with open(os.path.join(swarm_hub.state_dir, "rees", "swarm", "registry", "tls",
                           "ca.crt")) as f:
        assert f.read().strip() in printed
    join = lines[-1].split()
    assert join[:4] == ["docker", "swarm", "join", "--token"]
    assert join[-1] == f"{lab.manager_address}:2377"
    worker = lab.add_worker("w3", join=False)
    worker.docker(*join[1:])  # as the admin would, on the new machine
    node_id = worker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    wait_for(lambda: lab.node_state(node_id) == "ready", 30, "w3 ready")
    # the new node pulls the environment over TLS from the registry (with credentials)
    ref = registry_ref(swarm_hub, environment[0])
    login = subprocess.run(["docker", "login", "-u", "tljh-rees", "--password-stdin",
                            swarm_hub.registry], input=_registry_password(swarm_hub),
                           env=worker.env, capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    assert worker.docker("pull", ref, check=False).returncode == 0


def _registry_password(hub) -> str:
    with open(os.path.join(hub.state_dir, "rees", "swarm", "registry", "password")) as f:
        return f.read().strip()


def test_a_registry_that_is_down_fails_the_build(swarm_hub, environment, base_image):
    pids = pids_mentioning(os.path.join(swarm_hub.state_dir, "rees", "swarm"))
    assert pids, "the registry is not running"
    # stopped, not killed: the Hub restarts a managed service that exits
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        repo = swarm_hub.repo
        repo.commit({"changed.txt": "a new commit\n"})
        r = swarm_hub.rees("POST", "builds", json={"repo": repo.url, "name": environment[0]})
        assert r.status_code in (200, 202), r.text
        build = wait_build(swarm_hub, r.json()["id"], timeout=600)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert build["status"] == "failed", build
    assert f"the registry {swarm_hub.registry} did not take the image" in build["error"]
