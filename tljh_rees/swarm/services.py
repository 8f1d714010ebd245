"""Add-on services in multi-node mode: each a Swarm service on an overlay network of its
server's own, the server's service listing that network in its spec.

What a service gets (command, password, limits, volume, labels), the passwords and the
connection details, the order of a start and the failure message are ``services/
runner.py``'s; only how things run differs here, and why:

- **network**: an ``overlay``, ``internal`` (no gateway: nothing outside reaches the
  services, and they reach nothing outside) and not attachable (only Swarm services join
  it; ``docker run --network`` cannot). It is made before the server's service, whose
  spec lists it beside the node's ``bridge``: a Swarm service cannot join a network
  later without restarting, and an internal network alone would leave the server with no
  host-mode port and no way to the Hub.
- **names**: each service is reached by its kind's name (``postgres``, ``redis``), a
  network alias, as on one machine. Endpoint mode ``dnsrr``: the name resolves to the one
  task's address; a virtual IP (IPVS) adds nothing for one task.
- **placement**: a persistent service's volume is a local volume of the user's home
  node, so it runs there (next to the server, which is pinned there too). Services whose
  data need not outlive them (a temporary user's, or a kind the site made not
  persistent) go wherever Swarm finds room for their memory reservation, within
  ``rees.swarm.service_placement``: a full node then does not refuse a launch another
  node could take, at the cost of one hop on the overlay. Their data stay in the
  container's own layer (the image's data folder, the service user's, mode 0700): Swarm's
  tmpfs mounts take a mode but no owner.
- **health**: the kind's health command is the task's health check; Swarm keeps the task
  ``starting`` until it passes and fails it when it keeps failing after the start
  period (the health timeout). The timeout counts from the container's start, not from
  the pull of the image on its node.
- **connection file**: ``~/.rees/services.env`` cannot be written into a container on
  another node; it is a Swarm secret of this launch (encrypted in the swarm's store,
  shown by no ``inspect``), mounted by the server's spec at that path, the server user's,
  mode 0400.
- Docker 20.10's Swarm spec has no ``no-new-privileges``; the capabilities dropped on one
  machine are dropped here too, and the image runs as the service's own user.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from typing import Awaitable, Callable

from docker.errors import APIError, NotFound
from docker.types import (ContainerSpec, EndpointSpec, Healthcheck, Mount,
                          NetworkAttachmentConfig, Placement, Resources, RestartPolicy,
                          SecretReference, TaskTemplate)

from .. import LABEL_PREFIX
from ..services.runner import (LOG_LINES, OWNER_LABEL, Running, ServiceFailed, ServiceLaunch,
                               ServiceRunner, failure_message)
from .nodes import node
from .tasks import FINISHED, TaskTimeout, Unschedulable, wait_task

NAME_MAX = 63  # Swarm's limit on service, network and secret names
HEALTH_INTERVAL = 1  # seconds between health checks
GONE_TIMEOUT = 60  # seconds a stop waits for removed services' tasks to let go of the network
CAP_DROP = ["NET_RAW"]
SERVICES_ENV = "/.rees/services.env"  # in the server's home


def swarm_name(base: str, suffix: str) -> str:
    """``base`` + ``suffix``, at most NAME_MAX characters: a long ``base`` is cut and a
    hash of it kept, so two long names stay apart."""
    name = base + suffix
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{base[:NAME_MAX - len(suffix) - 9]}-{digest}{suffix}"


def service_constraints(launch: ServiceLaunch, home_node: str, extra: list[str],
                        labels: list[str]) -> list[str]:
    """Where a service may run: a persistent one (it has a volume) on the home node
    only; the others on nodes with every label of ``labels`` (``key=value``)."""
    if launch.volume:
        return [*extra, f"node.id=={home_node}"]
    found = [f"node.labels.{k}=={v}" for k, v in (x.split("=", 1) for x in labels)]
    return [*extra, *found]


def health_check(launch: ServiceLaunch, timeout: float) -> Healthcheck:
    return Healthcheck(test=["CMD", *launch.kind.health_command()],
                       interval=int(HEALTH_INTERVAL * 1e9), timeout=int(10e9), retries=3,
                       start_period=int(timeout * 1e9))


class SwarmServiceRunner(ServiceRunner):
    """A ServiceRunner whose services are Swarm services (``api``: the manager's
    client). ``home_node()`` is the node holding the user's volumes ('' for a temporary
    user, whose services then keep nothing)."""

    def __init__(self, *args, publish: Callable[[str], Awaitable[str]] | None = None,
                 home_node: Callable[[], str] = lambda: "",
                 constraints: list[str] | None = None, labels: list[str] | None = None,
                 unschedulable_grace: float = 5, **kwargs):
        super().__init__(*args, **kwargs)
        self.publish = publish  # a local image -> its registry reference, by digest
        self.home_node = home_node
        self.constraints = list(constraints or [])
        self.labels = list(labels or [])
        self.unschedulable_grace = unschedulable_grace

    @staticmethod
    def network_name(server: str) -> str:
        return swarm_name(server, "--services")

    async def open(self, server: str, user: str, running: Running) -> None:
        """The network, then this launch's secret with the connection details (the
        server's spec names both)."""
        await super().open(server, user, running)
        try:
            name = swarm_name(server, f"--services-{secrets.token_hex(4)}")
            made = await asyncio.to_thread(
                self.api.create_secret, name, running.env_text().encode(),
                labels={OWNER_LABEL: server, LABEL_PREFIX + "user": user})
            running.secret = {"ID": made["ID"], "Name": name}
        except BaseException:
            await self.stop(server)
            raise

    def _network(self, network: str, server: str, user: str) -> None:
        self.api.create_network(network, driver="overlay", internal=True, attachable=False,
                                labels={OWNER_LABEL: server, LABEL_PREFIX + "user": user})

    async def _image(self, name: str, version: str) -> str:
        """The local image, pushed to the registry (once per Hub process): every node
        pulls it by digest."""
        local = await super()._image(name, version)
        return await self.publish(local) if self.publish is not None else local

    def object_name(self, launch: ServiceLaunch) -> str:
        return swarm_name(launch.server, f"--{launch.name}")

    def spec(self, launch: ServiceLaunch) -> TaskTemplate:
        """The service's task: its image by digest, the password in its environment only,
        its volume on the home node, limits as on one machine (memory also reserved)."""
        kind = launch.kind
        mounts = [Mount(kind.data_dir, launch.volume, type="volume",
                        labels={LABEL_PREFIX + "user": launch.user})] if launch.volume else []
        container = ContainerSpec(
            launch.image, launch.command(), env=launch.environment(), mounts=mounts,
            stop_signal=kind.stop_signal, healthcheck=health_check(launch,
                                                                   self.health_timeout),
            cap_drop=CAP_DROP, labels=launch.labels())
        return TaskTemplate(
            container,
            resources=Resources(mem_limit=launch.memory, mem_reservation=launch.memory,
                                cpu_limit=int(launch.cpu * 1e9)),
            placement=Placement(constraints=service_constraints(
                launch, self.home_node(), self.constraints, self.labels)),
            restart_policy=RestartPolicy(condition="none"),
            networks=[NetworkAttachmentConfig(launch.network, aliases=[launch.name])])

    async def _run(self, launch: ServiceLaunch) -> None:
        name = self.object_name(launch)
        await asyncio.to_thread(
            self.api.create_service, self.spec(launch), name=name, labels=launch.labels(),
            endpoint_spec=EndpointSpec(mode="dnsrr"))
        started: list[float] = []

        def expired(task: dict) -> bool:  # counted from the container's start
            if task["Status"]["State"] != "starting":
                return False
            started[:] = started or [time.monotonic()]
            return time.monotonic() - started[0] > self.health_timeout + 10

        try:
            task = await wait_task(self.api, name, lambda s: s == "running" or s in FINISHED,
                                   self.unschedulable_grace, expired)
        except Unschedulable as e:
            raise ServiceFailed(f"No node can take the {launch.name} service now: "
                                f"{e}") from None
        except TaskTimeout:
            raise ServiceFailed(await self._failure(
                launch, name, f"not healthy after {self.health_timeout:g} s")) from None
        status = task["Status"]
        if status["State"] != "running":
            raise ServiceFailed(await self._failure(
                launch, name, status.get("Err") or status["State"]))
        where = await asyncio.to_thread(node, self.api, task["NodeID"])
        self.progress(f"{launch.name} {launch.version} placed on node "
                      f"{where.describe() if where else task['NodeID'][:12]}")

    async def _failure(self, launch: ServiceLaunch, name: str, why: str) -> str:
        """The failure message with the service's last lines (read through the manager,
        from whichever node ran it; they may take a moment to arrive)."""
        text = ""
        for _ in range(10):
            text = await asyncio.to_thread(self._logs, name)
            if text.strip():
                break
            await asyncio.sleep(0.5)
        return failure_message(launch.name, text, launch.password, why)

    def _logs(self, name: str) -> str:
        try:
            chunks = self.api.service_logs(name, stdout=True, stderr=True, tail=LOG_LINES)
            return b"".join(chunks).decode("utf-8", "replace")
        except APIError:
            return ""

    async def _abandon(self, server: str) -> None:
        """The services only: the network and the secret are in the server's spec, and go
        once the server's service is gone (the spawner's ``_stop_services``)."""
        await self._remove_services(server)

    async def _remove_services(self, server: str) -> None:
        owned = {"label": f"{OWNER_LABEL}={server}"}
        for service in await asyncio.to_thread(self.api.services, filters=owned):
            try:
                await asyncio.to_thread(self.api.remove_service, service["ID"])
            except NotFound:
                pass

    async def stop(self, server: str) -> None:
        """Remove the server's services, then this launch's secrets and the network once
        no task holds it (persistent volumes stay on their nodes)."""
        await self._remove_services(server)
        owned = {"label": f"{OWNER_LABEL}={server}"}
        for secret in await asyncio.to_thread(self.api.secrets, filters=owned):
            await self._until_removed(self.api.remove_secret, secret["ID"])
        networks = await asyncio.to_thread(self.api.networks,
                                           names=[self.network_name(server)])
        for network in networks:
            if network["Name"] == self.network_name(server):
                await self._until_removed(self.api.remove_network, network["Id"])

    async def _until_removed(self, remove, object_id: str) -> None:
        """``remove(object_id)``, again while it is in use by a task going away."""
        deadline = time.monotonic() + GONE_TIMEOUT
        while True:
            try:
                await asyncio.to_thread(remove, object_id)
                return
            except NotFound:
                return
            except APIError as e:
                if "in use" not in str(e) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.5)


def secret_mount(running: Running, home: str, uid: int, gid: int) -> SecretReference:
    """The server's view of its launch's secret: ``~/.rees/services.env``, its user's,
    readable by it only. Docker makes the folder ``~/.rees`` in the container (root's)."""
    return SecretReference(running.secret["ID"], running.secret["Name"],
                           filename=home.rstrip("/") + SERVICES_ENV,
                           uid=str(uid), gid=str(gid), mode=0o400)
