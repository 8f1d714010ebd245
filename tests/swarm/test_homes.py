"""Moving a user's files to another node (``tljh-rees swarm move-home``), on the real
swarm of tests/swarm/conftest.py: the copy goes through the swarm itself (two helper tasks
on an overlay network), and the user's next server runs on the new node with the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import stop_server, wait_ready
from tests.swarm.conftest import RUN
from tests.swarm.test_core import service_node, start, through_proxy
from tests.swarm_support import run


def service_image(lab, user: str) -> str:
    """The image of the user's running server, which its node has pulled."""
    spec = json.loads(run("docker", "service", "inspect", f"rees-swarm-{user}--s1").stdout)
    return spec[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


def cli(hub, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tljh_rees", "swarm", *args,
         "--config", os.path.join(hub.state_dir, "rees.yaml"),
         "--state-dir", os.path.join(hub.state_dir, "rees")],
        capture_output=True, text=True, timeout=900, check=False)


def test_move_home_copies_the_files_and_the_next_server_follows(lab, swarm_hub,
                                                                environment):
    name, _ = environment
    user = f"eve{RUN}"
    r, token = start(swarm_hub, user, "s1", name, "large")  # on w1, the labelled worker
    assert r.status_code in (201, 202), r.text
    wait_ready(swarm_hub, user, "s1", timeout=300)
    assert service_node(lab, user, "s1") == "rees-swarm-w1"
    for path, content in (("work/notes.txt", "moved with me\n"),
                          ("work/deep/er/data.csv", "a,b\n1,2\n")):
        folder = ""
        for part in path.split("/")[1:-1]:  # the folders first, as JupyterLab makes them
            folder = f"{folder}/{part}" if folder else part
            through_proxy(swarm_hub, user, "s1", token, f"api/contents/work/{folder}",
                          method="PUT", json={"type": "directory"})
        put = through_proxy(swarm_hub, user, "s1", token, f"api/contents/{path}",
                            method="PUT", json={"type": "file", "format": "text",
                                                "content": content})
        assert put.status_code in (200, 201), put.text
    # a persistent service's data on the home node (as PostgreSQL leaves them: its own
    # owner, a private folder), made there with the worker's own engine
    image = service_image(lab, user)
    w1, w2 = lab.workers[0], lab.workers[1]
    postgres_volume = f"rees-swarm{RUN}-{user}-postgres"
    w1.docker("run", "--rm", "--user", "0", "-v", f"{postgres_volume}:/data", image, "sh",
              "-c", "echo 15 > /data/PG_VERSION && chown -R 999:999 /data && chmod 700 /data")
    # not while a server writes there
    busy = cli(swarm_hub, "move-home", user, "rees-swarm-w2")
    assert busy.returncode == 1 and "stop them first" in busy.stderr, busy.stderr
    stop_server(swarm_hub, user, "s1", token=token)
    # a node that does not exist is named as such, with the ones that do
    wrong = cli(swarm_hub, "move-home", user, "no-such-node")
    assert wrong.returncode == 1 and "rees-swarm-w2" in wrong.stderr, wrong.stderr

    moved = cli(swarm_hub, "move-home", user, "rees-swarm-w2")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"{user}'s files are now on rees-swarm-w2" in moved.stdout
    assert f"copying {postgres_volume}" in moved.stdout, moved.stdout
    assert "sent " in moved.stdout and "received " in moved.stdout, moved.stdout
    # the copy's tasks and network are gone
    assert not run("docker", "service", "ls", "-q", "--filter",
                   "name=rees-move-").stdout.split()
    assert not run("docker", "network", "ls", "-q", "--filter",
                   "name=rees-move-").stdout.split()

    # the next server (a profile with no placement) runs on w2, with the files
    r, token = start(swarm_hub, user, "s2", name, "small")
    assert r.status_code in (201, 202), r.text
    wait_ready(swarm_hub, user, "s2", timeout=300)
    assert service_node(lab, user, "s2") == "rees-swarm-w2"
    for path, content in (("work/notes.txt", "moved with me\n"),
                          ("work/deep/er/data.csv", "a,b\n1,2\n")):
        got = through_proxy(swarm_hub, user, "s2", token, f"api/contents/{path}")
        assert got.status_code == 200 and got.json()["content"] == content, got.text
    # still the user's own: they can write next to them
    put = through_proxy(swarm_hub, user, "s2", token, "api/contents/work/deep/new.txt",
                        method="PUT", json={"type": "file", "format": "text",
                                            "content": "mine\n"})
    assert put.status_code in (200, 201), put.text
    stop_server(swarm_hub, user, "s2", token=token)
    # the service's data came along, with their owner and mode
    copied = w2.docker("run", "--rm", "--user", "0", "-v", f"{postgres_volume}:/data", image,
                       "stat", "-c", "%u:%g %a", "/data", "/data/PG_VERSION").stdout.split("\n")
    assert copied[:2] == ["999:999 700", "999:999 644"], copied
    # forgetting a home node that is up is refused: its files are there
    forget = cli(swarm_hub, "forget-home", user)
    assert forget.returncode == 1 and "move-home" in forget.stderr, forget.stderr
