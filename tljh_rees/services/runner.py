"""Running a server's add-on services: a private network per server, each service in its
own container there (started together, then health-checked), and the connection details
the notebook server gets.

The network is ``internal``: nothing on it is published on a host port or reachable
from the Hub's bridge, where every other server lives. Only the server it belongs to
joins it. Passwords are made here for each launch and reach the service only through its
environment (never a command line or a label) and the server through its environment.

What a service gets (command, password, limits, volume, labels: :class:`ServiceLaunch`),
the passwords and connection details (:meth:`ServiceRunner.plan`), the order of a start
and what a failure reports are decided here once; multi-node mode's runner
(``swarm/services.py``) replaces only the parts that run things: the network, one
service, and stopping.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from docker.errors import APIError, NotFound

from .. import LABEL_PREFIX
from .kinds import PASSWORD_ENV, ServiceCatalog, ServiceKind

OWNER_LABEL = LABEL_PREFIX + "services-of"  # the notebook container's name
SERVICE_LABEL = LABEL_PREFIX + "service"
LOG_LINES = 20


class ServiceFailed(Exception):
    """A service did not become healthy: the message has its name and its last log lines."""


@dataclass
class Running:
    """What a started set of services gives the notebook server."""

    network: str
    env: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # by service name
    secret: dict = field(default_factory=dict)  # multi-node: the Swarm secret {ID, Name}

    def env_text(self) -> str:
        """``~/.rees/services.env``: one ``KEY=value`` a line."""
        return "".join(f"{key}={value}\n" for key, value in sorted(self.env.items()))


@dataclass(frozen=True)
class ServiceLaunch:
    """One service of one server, as it is to run, wherever it runs."""

    server: str  # the notebook server's container (or Swarm service) name
    user: str
    network: str
    kind: ServiceKind
    version: str
    params: dict
    password: str
    image: str
    volume: str  # '' when its data need not outlive it
    memory: int
    cpu: float

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def object_name(self) -> str:
        return f"{self.server}--{self.name}"

    def command(self) -> list[str]:
        return self.kind.command(self.version, self.params)

    def environment(self) -> dict[str, str]:
        return {PASSWORD_ENV: self.password}  # the only place the password goes

    def labels(self) -> dict[str, str]:
        return {OWNER_LABEL: self.server, SERVICE_LABEL: self.name,
                LABEL_PREFIX + "user": self.user}


def failure_message(name: str, log_text: str, password: str, why: str) -> str:
    """Why service ``name`` did not start, with its last log lines, password hidden."""
    lines = [line.replace(password, "[secret]") for line in log_text.splitlines() if line]
    shown = "\n".join(lines[-LOG_LINES:]) or "(no output)"
    return f"The {name} service did not start ({why}). Its last lines:\n{shown}"


class ServiceRunner:
    """Starts and stops the services of one server, through the docker ``api`` client."""

    def __init__(self, api, catalog: ServiceCatalog, image_for: Callable[[str, str], str],
                 health_timeout: float = 90, progress: Callable[[str], None] = lambda m: None):
        self.api = api
        self.catalog = catalog
        self.image_for = image_for  # (kind name, version) -> a local image
        self.health_timeout = health_timeout
        self.progress = progress

    @staticmethod
    def network_name(server: str) -> str:
        return f"{server}--services"

    def plan(self, server: str, services: list[dict]) -> Running:
        """Passwords and connection details, decided before anything starts, so that the
        notebook server can start alongside its services."""
        running = Running(self.network_name(server))
        for spec in services:
            kind = self.catalog.kind(spec["name"])
            password = secrets.token_urlsafe(24)
            running.passwords[spec["name"]] = password
            running.env.update(kind.connection_env(spec["name"], password, spec["params"]))
        return running

    async def open(self, server: str, user: str, running: Running) -> None:
        """Before the notebook server starts: remove what a crash may have left of an
        earlier start, and make the network (a Swarm service names its networks when it
        is made). On failure nothing is left."""
        await self.stop(server)
        try:
            await asyncio.to_thread(self._network, running.network, server, user)
        except BaseException:
            await self.stop(server)
            raise

    async def start(self, server: str, user: str, services: list[dict], volume_for,
                    running: Running) -> None:
        """Start ``services`` (normalized: name, version, params) on the network ``open``
        made, as ``running`` planned, for the notebook server named ``server`` of
        ``user``, and wait until they are healthy. ``volume_for(name)`` names a service's
        persistent volume ('' for none). On any failure everything started here is
        removed, then the error raised."""
        started = [asyncio.ensure_future(self._start_one(
            server, user, running.network, spec, volume_for, running.passwords[spec["name"]]))
            for spec in services]
        try:
            await asyncio.gather(*started)
        except BaseException:
            for one in started:  # the others stop waiting too
                one.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            await self._abandon(server)
            raise

    async def _abandon(self, server: str) -> None:
        """After a failed start: remove what ``start`` made."""
        await self.stop(server)

    def _network(self, network: str, server: str, user: str) -> None:
        self.api.create_network(network, driver="bridge", internal=True, labels={
            OWNER_LABEL: server, LABEL_PREFIX + "user": user})

    async def _start_one(self, server, user, network, spec, volume_for, password) -> None:
        name, version = spec["name"], spec["version"]
        kind = self.catalog.kind(name)
        site = self.catalog.settings(name)
        self.progress(f"starting {name} {version}")
        image = await self._image(name, version)
        memory, cpu = self.catalog.needs(name)
        launch = ServiceLaunch(server, user, network, kind, version, spec["params"],
                               password, image, volume_for(name) if site.persistent else "",
                               memory, cpu)
        await self._run(launch)
        self.progress(f"{name} {version} is ready")

    async def _image(self, name: str, version: str) -> str:
        """The image a service of kind ``name`` runs (made on this machine if missing)."""
        return await asyncio.to_thread(self.image_for, name, version)

    async def _run(self, launch: ServiceLaunch) -> None:
        """Run one service and return once it is healthy (ServiceFailed if not)."""
        kind = launch.kind
        mounts, tmpfs = {}, {}
        if launch.volume:  # a new volume takes the image's owner of data_dir
            mounts[launch.volume] = {"bind": kind.data_dir, "mode": "rw"}
        else:
            tmpfs[kind.data_dir] = kind.tmpfs_options()
        await asyncio.to_thread(self._remove, launch.object_name)

        def create() -> str:
            host = self.api.create_host_config(
                binds=mounts, tmpfs=tmpfs, network_mode=launch.network,
                mem_limit=launch.memory, nano_cpus=int(launch.cpu * 1e9),
                security_opt=["no-new-privileges"], cap_drop=["NET_RAW"])
            networking = self.api.create_networking_config({
                launch.network: self.api.create_endpoint_config(aliases=[launch.name])})
            made = self.api.create_container(
                launch.image, command=launch.command(), name=launch.object_name,
                environment=launch.environment(), stop_signal=kind.stop_signal,
                labels=launch.labels(), host_config=host, networking_config=networking)
            self.api.start(made["Id"])
            return made["Id"]

        container_id = await asyncio.to_thread(create)
        await self._until_healthy(launch, container_id)

    async def _until_healthy(self, launch: ServiceLaunch, container_id) -> None:
        deadline = time.monotonic() + self.health_timeout
        while True:
            state = await asyncio.to_thread(self.api.inspect_container, container_id)
            if not state["State"]["Running"]:
                raise ServiceFailed(self._failure(launch, container_id, "it stopped"))
            if await asyncio.to_thread(self._healthy, launch.kind, container_id):
                return
            if time.monotonic() > deadline:
                raise ServiceFailed(self._failure(
                    launch, container_id, f"not healthy after {self.health_timeout:g} s"))
            await asyncio.sleep(0.3)

    def _healthy(self, kind, container_id) -> bool:
        """Whether the health command succeeds; not when the container stopped meanwhile
        (the next look at its state then reports why)."""
        try:
            exec_id = self.api.exec_create(container_id, kind.health_command())
            self.api.exec_start(exec_id)
        except APIError:  # "… is not running": 409 from the create, 500 from the start
            if not self.api.inspect_container(container_id)["State"]["Running"]:
                return False
            raise
        return self.api.exec_inspect(exec_id)["ExitCode"] == 0

    def _failure(self, launch: ServiceLaunch, container_id, why) -> str:
        try:
            text = self.api.logs(container_id, tail=LOG_LINES).decode("utf-8", "replace")
        except APIError:
            text = ""
        return failure_message(launch.name, text, launch.password, why)

    def _remove(self, container: str) -> None:
        try:
            self.api.remove_container(container, force=True, v=False)
        except NotFound:
            pass

    async def stop(self, server: str) -> None:
        """Remove the server's service containers (their persistent volumes stay) and its
        network."""
        def remove() -> None:
            for found in self.api.containers(all=True, filters={
                    "label": f"{OWNER_LABEL}={server}"}):
                self._remove(found["Id"])
            network = self.network_name(server)
            try:
                for endpoint in (self.api.inspect_network(network).get("Containers") or {}):
                    self.api.disconnect_container_from_network(endpoint, network, force=True)
                self.api.remove_network(network)
            except NotFound:
                pass

        await asyncio.to_thread(remove)
