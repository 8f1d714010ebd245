"""Users' home nodes in multi-node mode: where each user's volume lives, and moving it.

The record is a swarm config named ``<volume>-node`` (labels: the user, the node id), so
the swarm itself keeps it, beside the services, and every manager sees it. Configs cannot
change; a move replaces the record.

**Moving** copies the volume to another node through the swarm, without any access to the
nodes themselves: two short tasks of the project's helper image (it has Python) on a
private overlay network made for the move, one on each node. The receiver listens; the
sender streams a tar of the volume (owners, modes and links kept); then the record points
at the new node. The old copy stays where it was: a swarm cannot remove a volume on a
node, so the admin removes it there (``docker volume rm``) once the user is happy.

**Forgetting** drops the record of a node that is gone for good: the user's next server
starts with an empty volume wherever it fits.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Callable

import docker
from docker.errors import APIError, NotFound
from docker.types import (ContainerSpec, EndpointSpec, Mount, Placement, RestartPolicy,
                          TaskTemplate)

from .. import LABEL_PREFIX
from .tasks import FINISHED, TaskTimeout, Unschedulable, wait_task

HOME_LABEL = LABEL_PREFIX + "home-node-of"  # the user whose home node a config records
NODE_LABEL = LABEL_PREFIX + "node"
PORT = 7070

# Run by the helper image's python3 as root, with the volume at /volume.
RECEIVE = f"""
import os, socket, sys, tarfile
if os.listdir("/volume"):
    sys.exit("this node has a volume of that name with files in it already; remove it "
             "there (docker volume rm) or move to another node")
server = socket.create_server(("", {PORT}))
server.settimeout(600)
connection, _ = server.accept()
with connection.makefile("rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
    count = 0
    for member in tar:
        tar.extract(member, "/volume", numeric_owner=True)
        count += 1
print(f"received {{count}} entries", flush=True)
"""
SEND = f"""
import os, socket, sys, tarfile, time
for attempt in range(600):
    try:
        connection = socket.create_connection((sys.argv[1], {PORT}), timeout=600)
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit("the receiving task never answered")
size = 0
with connection.makefile("wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
    tar.add("/volume", ".", recursive=False)  # the volume's own owner and mode too
    for folder, dirs, files in os.walk("/volume"):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            tar.add(path, os.path.relpath(path, "/volume"), recursive=False)
            if os.path.isfile(path) and not os.path.islink(path):
                size += os.lstat(path).st_size
connection.close()
print(f"sent {{size}} bytes", flush=True)
"""


class HomeError(RuntimeError):
    """A move or a lookup that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Home:
    user: str
    volume: str
    node_id: str


def config_name(volume: str) -> str:
    return f"{volume}-node"


def home_of(api: docker.APIClient, volume: str) -> str:
    """The node id that holds ``volume``, or "" if none is recorded."""
    for config in api.configs(filters={"name": config_name(volume)}):
        if config["Spec"]["Name"] == config_name(volume):
            return (config["Spec"].get("Labels") or {}).get(NODE_LABEL, "")
    return ""


def remember(api: docker.APIClient, volume: str, node_id: str, user: str) -> None:
    api.create_config(config_name(volume), node_id.encode(),
                      labels={HOME_LABEL: user, NODE_LABEL: node_id})


def homes_of(api: docker.APIClient, user: str) -> list[Home]:
    """The user's recorded volumes (one, unless the storage name changed)."""
    found = []
    for config in api.configs(filters={"label": f"{HOME_LABEL}={user}"}):
        name, labels = config["Spec"]["Name"], config["Spec"].get("Labels") or {}
        if name.endswith("-node") and labels.get(HOME_LABEL) == user:
            found.append(Home(user, name[:-len("-node")], labels.get(NODE_LABEL, "")))
    return found


def forget(api: docker.APIClient, volume: str) -> None:
    try:
        api.remove_config(config_name(volume))
    except NotFound:
        pass


def running_servers(api: docker.APIClient, user: str) -> list[str]:
    return [s["Spec"]["Name"] for s in api.services(filters={
        "label": f"{LABEL_PREFIX}user={user}"})]


async def move(api: docker.APIClient, home: Home, to_node: str, image: str,
               service_volumes: tuple[str, ...] = (),
               say: Callable[[str], None] = lambda line: None, timeout: float = 3600) -> str:
    """Copy ``home``'s volume, and the user's persistent service volumes named in
    ``service_volumes`` (e.g. ``<volume>-postgres``), to node ``to_node`` (an id), then
    record it there; returns what was sent. The user must have no server running."""
    servers = await asyncio.to_thread(running_servers, api, home.user)
    if servers:
        raise HomeError(f"{home.user} has servers running ({', '.join(servers)}); stop "
                        "them first, so that nothing writes while the files move")
    if to_node == home.node_id:
        raise HomeError(f"{home.user}'s files are on that node already")
    # services' names are DNS labels; a volume's name may hold more (e.g. "_")
    tag = "rees-move-" + hashlib.sha256(home.volume.encode()).hexdigest()[:12]
    network = f"{tag}-net"
    await asyncio.to_thread(api.create_network, network, driver="overlay", internal=True,
                            labels={HOME_LABEL: home.user})
    deadline = time.monotonic() + timeout
    sent = []
    try:
        for volume in (home.volume, *service_volumes):
            say(f"copying {volume}: node {home.node_id[:12]} → node {to_node[:12]}")
            result = await _copy(api, tag, network, image, home, volume, to_node, deadline,
                                 say)
            sent.append(f"{volume}: {result}")
        await asyncio.to_thread(forget, api, home.volume)
        await asyncio.to_thread(remember, api, home.volume, to_node, home.user)
        return "; ".join(sent)
    finally:
        await asyncio.to_thread(_remove_services, api, (f"{tag}-from", f"{tag}-to"))
        await asyncio.to_thread(_remove_network, api, network)


async def _copy(api, tag, network, image, home, volume, to_node, deadline, say) -> str:
    """One volume from the home node to ``to_node``: the receiver, then the sender."""
    receiver, sender = f"{tag}-to", f"{tag}-from"
    await asyncio.to_thread(_task, api, receiver, image, RECEIVE, [], home, volume, to_node,
                            network, False)
    await asyncio.to_thread(_task, api, sender, image, SEND, [receiver], home, volume,
                            home.node_id, network, True)
    for name in (sender, receiver):
        try:
            task = await wait_task(api, name, lambda state: state in FINISHED,
                                   unschedulable_grace=30,
                                   expired=lambda _: time.monotonic() > deadline)
            state, error = task["Status"]["State"], task["Status"].get("Err") or ""
        except (Unschedulable, TaskTimeout) as e:
            state, error = "not run", str(e)
        lines = await asyncio.to_thread(_logs, api, name)
        if state != "complete":
            raise HomeError(f"the copy of {volume} failed ({name}: {error or state}): "
                            f"{lines[-1] if lines else 'no output'}; the files are still "
                            "on the old node, which stays their home")
        say(lines[-1] if lines else f"{name} done")
    result = (await asyncio.to_thread(_logs, api, sender) or ["sent"])[-1]
    await asyncio.to_thread(_remove_services, api, (sender, receiver))
    return result


def _remove_services(api, names) -> None:
    for name in names:
        try:
            api.remove_service(name)
        except NotFound:
            pass


def _task(api, name, image, script, args, home, volume, node_id, network, read_only) -> str:
    _remove_services(api, (name,))  # what an interrupted move left
    spec = TaskTemplate(
        ContainerSpec(image, ["python3", "-c", script, *args], user="0:0",
                      mounts=[Mount("/volume", volume, type="volume",
                                    read_only=read_only, no_copy=True,
                                    labels={LABEL_PREFIX + "user": home.user})]),
        placement=Placement(constraints=[f"node.id=={node_id}"]),
        restart_policy=RestartPolicy(condition="none"), networks=[network])
    api.create_service(spec, name=name, labels={HOME_LABEL: home.user},
                       endpoint_spec=EndpointSpec(mode="dnsrr"))
    return name


def _logs(api, service: str) -> list[str]:
    try:
        raw = api.service_logs(service, stdout=True, stderr=True)
        text = b"".join(raw).decode("utf-8", "replace") if not isinstance(raw, bytes) \
            else raw.decode("utf-8", "replace")
    except APIError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def _remove_network(api, network: str) -> None:
    for _ in range(20):  # the tasks' endpoints go a moment after the services
        try:
            api.remove_network(network)
            return
        except NotFound:
            return
        except APIError:
            time.sleep(0.5)
