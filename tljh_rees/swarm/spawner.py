"""ReesSwarmSpawner: ReesSpawner's choices, run as a Swarm service on any fitting node.

What runs is decided exactly as on one machine (``Catalog.launch_plan``, read by
ReesSpawner); only where differs:

- the image is the environment's reference in the registry, by digest, so every node
  runs the very image the catalog recorded;
- the profile's memory is the service's reservation and limit (memory is what does not
  fit one machine) and its CPUs the limit; ``rees.swarm.placement`` pins a profile to
  nodes with given labels;
- **reaching the server**: the Hub and the proxy run on the manager's host, which cannot
  join an overlay network, so the server's port is published in *host mode* on the node it
  runs on and the Hub connects to ``node address:published port``. The routing mesh is
  not used: it would add a hop through every node's ingress and hide which node serves;
- **storage**: a user's volume is a local volume on one node, their *home node*, which
  the swarm itself remembers (swarm/homes.py, which also moves it). The
  first launch lets Swarm choose (a short preparation task with the server's constraints
  and reservation, which also gives the new volume to the server's user); every later
  server of that user is pinned to the home node. If that node is down, the launch fails
  saying so: the files are there, and a server elsewhere would show an empty folder.
- a server whose node goes down is reported stopped (the task is not moved elsewhere:
  restart condition ``none``);
- **add-on services** are Swarm services too (swarm/services.py), on an overlay network
  of the server's that its spec lists, with the connection file as a per-launch secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
from typing import ClassVar

from docker.errors import APIError, NotFound
from docker.types import (ContainerSpec, Mount, NetworkAttachmentConfig, Placement,
                          Resources, RestartPolicy, TaskTemplate)
from dockerspawner import SwarmSpawner
from tornado import web
from traitlets import Dict, Integer, List, Unicode, default

from .. import LABEL_PREFIX
from ..spawner import LAB_MOUNT, ReesSpawner, hub_error
from .lab import lab_image
from .lab import volume_name as lab_volume
from .homes import home_of, remember
from .nodes import node
from .registry import Registry, RegistryUnavailable, by_digest, pull, push
from .services import SERVICES_ENV, SwarmServiceRunner, secret_mount
from .tasks import FINISHED, Unschedulable, wait_task



class ReesSwarmSpawner(ReesSpawner, SwarmSpawner):
    registry_address = Unicode("", config=True, help="host:port of the registry.")
    registry_username = Unicode("", config=True)
    registry_password = Unicode("", config=True, help="Never logged.")
    helper_image = Unicode(
        "", config=True,
        help="A local image of the project's own (the base root filesystem) that prepares "
             "a new volume on its node (as root: chown to the server's user).")
    placement = Dict(config=True, help="Profile name → node labels (key=value) required.")
    unschedulable_grace = Integer(
        5, config=True, help="Seconds a task may wait for a fitting node before failing.")
    extra_constraints = List(Unicode(), config=True,
                             help="Swarm constraints every server gets.")

    @default("object_name")
    def _object_name_default(self):
        """A Swarm service's name must be a DNS label: no trailing "--" for a user's
        default server, at most 63 characters (a long one keeps a hash of the whole)."""
        name = self._render_templates(self.name_template).removesuffix("--")
        if len(name) > 63:
            name = f"{name[:54]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        return name

    @default("http_timeout")
    def _http_timeout_default(self):
        # a node may be starting many servers at once; JupyterHub's 30 s gave up on some
        # of 20 started together on one 2-core node (benchmarks/bench_swarm.py)
        return 120

    # per Hub process: a local image's id → its registry reference; a lock per user's volume
    _pushed: ClassVar[dict] = {}
    _lab_volumes: ClassVar[dict] = {}  # the extension's folder → its volume's name
    _home_locks: ClassVar[dict] = {}
    _logged_in: ClassVar[set] = set()

    @property
    def registry(self) -> Registry:
        return Registry(self.registry_address, self.registry_username, self.registry_password)

    async def _log_in(self) -> None:
        """Once per Hub process: the engine's client keeps the registry's credentials and
        sends them with every service it creates, for the nodes to pull with."""
        auth = self.registry.auth_config()
        if not auth or self.registry_address in self._logged_in:
            return
        try:
            await self.docker("login", auth["username"], auth["password"],
                              registry=self.registry_address, reauth=True)
        except APIError as e:
            raise hub_error(503, f"The registry {self.registry_address} refused or did not "
                                 f"answer: {e.explanation or e}") from None
        self._logged_in.add(self.registry_address)

    async def _inspect(self, image: str) -> dict:
        try:
            return await super()._inspect(image)
        except web.HTTPError as e:
            if e.status_code != 404 or not await self._pull_from_registry():
                raise
        return await super()._inspect(image)

    async def _pull_from_registry(self) -> bool:
        """Multi-node mode: the disk garbage collector may have removed the image from
        this machine while the registry keeps it (``registry_ref``, by digest); the Hub
        reads the image's user and home (``_inspect``), so it pulls it back first. False
        when there is nothing to pull."""
        ref = self.launch_plan.registry_ref if self.launch_plan else ""
        if not by_digest(ref)[1]:
            return False
        self.note_progress("Pulling the environment's image from the registry")
        try:
            await asyncio.to_thread(pull, self.client, ref, self.registry.auth_config())
        except RegistryUnavailable as e:
            raise hub_error(503, str(e)) from None
        return True

    # -- where ---------------------------------------------------------------------------

    def constraints(self, pin: str = "") -> list[str]:
        profile = (self.launch_plan.profile or {}).get("name") if self.launch_plan else None
        labels = self.placement.get(profile or "", ())
        found = [f"node.labels.{k}=={v}" for k, v in (x.split("=", 1) for x in labels)]
        return [*self.extra_constraints, *found, *([f"node.id=={pin}"] if pin else [])]

    def resources(self) -> Resources:
        memory = int(self.mem_limit) if self.mem_limit else None
        return Resources(mem_limit=memory, mem_reservation=memory,
                         cpu_limit=int(self.cpu_limit * 1e9) if self.cpu_limit else None)

    # -- storage: the user's volume on their home node -----------------------------------

    async def _ensure_volume(self, name: str, uid: int, gid: int) -> None:
        """Find (or let Swarm choose) the node that holds volume ``name`` and make it
        ``uid:gid``'s there; later servers of this user are pinned to that node."""
        await self._log_in()
        lock = self._home_locks.setdefault(name, asyncio.Lock())
        async with lock:  # two first launches at once must not make two volumes
            home = await asyncio.to_thread(home_of, self.client, name)
            if home:
                where = await asyncio.to_thread(node, self.client, home)
                if where is None or not where.usable:
                    raise hub_error(503, f"Your files are on node "
                                         f"{where.describe() if where else home[:12]}, which "
                                         f"is {where.state if where else 'gone'}; a server "
                                         "elsewhere would not have them. Try again when it "
                                         "is back, or ask an admin.")
            node_id = await self._prepare(name, uid, gid, home)
            if not home:
                await asyncio.to_thread(remember, self.client, name, node_id,
                                        self.user.name)
            self.home_node = node_id

    home_node = ""

    async def _pushed_image(self, local: str) -> str:
        """The registry's reference (by digest) of the local image ``local``, pushed
        the first time this Hub process needs it."""
        try:  # by id: a tag made again names another image
            key = (await self.docker("inspect_image", local))["Id"]
        except NotFound:
            raise hub_error(404, f"The image {local} is not on the Hub's machine, so it "
                                 "cannot be given to the other nodes.") from None
        ref = self._pushed.get(key)
        if ref is None:
            try:
                ref = await asyncio.to_thread(push, self.client, local, self.registry,
                                              lambda line: None)
            except RegistryUnavailable as e:
                raise hub_error(503, str(e)) from None
            self._pushed[key] = ref
        return ref

    async def _helper(self) -> str:
        if not self.helper_image:
            raise hub_error(500, "Multi-node mode has no helper image configured.")
        return await self._pushed_image(self.helper_image)

    def _lab_volume(self) -> str:
        """The extension's volume, named by a hash of its files: read once per Hub process
        (the installed extension changes only with an upgrade, which restarts the Hub),
        not at every launch on the Hub's event loop."""
        name = self._lab_volumes.get(self.lab_extension_path)
        if name is None:
            name = self._lab_volumes[self.lab_extension_path] = lab_volume(
                self.lab_extension_path)
        return name

    async def _lab_image(self) -> str:
        """The JupyterLab extension's image (swarm/lab.py), made once per version."""
        local = await asyncio.to_thread(lab_image, self.client, self.lab_extension_path,
                                        self.helper_image, LAB_MOUNT)
        return await self._pushed_image(local)

    async def _prepare(self, volume: str, uid: int, gid: int, home: str) -> str:
        """Run the helper once, as root, with only the volume: give it to ``uid:gid``.
        With the JupyterLab extension on, the helper is the extension's image, and the
        extension's volume is filled on that node by mounting it empty over its files.
        Returns the node it ran on."""
        name = f"{self.object_name[:54]}-prepare"
        await self._remove_service(name)
        mounts = [Mount("/volume", volume, type="volume", no_copy=True,
                        labels={LABEL_PREFIX + "user": self.user.name})]
        if not self.lab_extension_path:
            image = await self._helper()
        else:
            image = await self._lab_image()
            mounts.append(Mount(LAB_MOUNT, self._lab_volume(),
                                type="volume", read_only=True))
        spec = TaskTemplate(
            ContainerSpec(image, ["chown", f"{uid}:{gid}", "/volume"], user="0:0",
                          mounts=mounts),
            resources=self.resources(), placement=Placement(constraints=self.constraints(home)),
            restart_policy=RestartPolicy(condition="none"))
        await self.docker("create_service", spec, name=name,
                          labels={LABEL_PREFIX + "user": self.user.name})
        try:
            task = await self._wait_task(name, until_done=True)
        finally:
            await self._remove_service(name)
        if task["Status"]["State"] != "complete":
            raise hub_error(500, f"Could not prepare your volume: "
                                 f"{task['Status'].get('Err') or task['Status']['State']}")
        return task["NodeID"]

    async def _remove_service(self, name: str) -> None:
        try:
            await self.docker("remove_service", name)
        except NotFound:
            pass

    # -- the server -----------------------------------------------------------------------

    @property
    def mounts(self):
        """Named volumes as volumes (never filled from the image), host folders as binds
        (an admin's data mounts must exist on every node), the JupyterLab extension's
        folder as its volume on the node."""
        found = []
        for source, spec in self.volume_binds.items():
            read_only = spec["mode"].startswith("ro")
            if source == self.lab_extension_path:  # filled on this node by _prepare
                found.append(Mount(LAB_MOUNT, self._lab_volume(), type="volume",
                                   read_only=True, no_copy=True))
            elif source.startswith("/"):
                found.append(Mount(spec["bind"], source, type="bind", read_only=read_only))
            else:
                found.append(Mount(spec["bind"], source, type="volume", read_only=read_only,
                                   no_copy=True))
        return found

    async def _registry_image(self) -> str:
        """What every node pulls: an environment's image as the catalog recorded it in
        the registry, or a plain local image (an admin's template image, the site's
        default) pushed once per Hub process."""
        plan = self.launch_plan
        if plan is not None and plan.registry_ref:
            return plan.registry_ref
        if plan is not None and plan.environment and not getattr(plan, "plain_image", False):
            raise hub_error(409, "This environment was built before multi-node mode; "
                                 "rebuild it so that every node can pull it.")
        return await self._pushed_image(self.image)

    async def _start_container(self) -> tuple[str, int]:
        await self._log_in()
        self.image = await self._registry_image()
        self.extra_resources_spec = {}
        self.extra_placement_spec = {"constraints": self.constraints(self.home_node)}
        self.extra_endpoint_spec = {"ports": {None: (self.port, "tcp", "host")}}
        self.extra_task_spec = {"restart_policy": RestartPolicy(condition="none"),
                                "resources": self.resources()}
        self._spec_services()
        return await super()._start_container()

    # -- add-on services (swarm/services.py) --------------------------------------------

    service_placement = List(Unicode(), config=True,
                             help="Node labels (key=value) of the nodes that run add-on "
                                  "services whose data need not persist "
                                  "(rees.swarm.service_placement).")

    @property
    def service_runner(self) -> SwarmServiceRunner:
        if self._service_runner is None:
            self._service_runner = SwarmServiceRunner(
                self.client, self.catalog.services, self.service_image,
                health_timeout=self.service_health_timeout, progress=self.note_progress,
                publish=self._pushed_image, home_node=lambda: self.home_node,
                constraints=self.extra_constraints, labels=self.service_placement,
                unschedulable_grace=self.unschedulable_grace)
        return self._service_runner

    def _spec_services(self) -> None:
        """The server's spec names its services' network (beside the node's bridge, for
        its port and the Hub) and mounts its launch's secret as ~/.rees/services.env."""
        running = self._services_running
        spec = {k: v for k, v in self.extra_container_spec.items() if k != "secrets"}
        mine = [s for s in self.extra_container_spec.get("secrets") or []
                if not str(s.get("File", {}).get("Name", "")).endswith(SERVICES_ENV)]
        if running is not None:
            home, uid, gid = self._account
            mine.append(secret_mount(running, home, uid, gid))
            self.extra_task_spec["networks"] = [
                "bridge", NetworkAttachmentConfig(running.network)]
        if mine:
            spec["secrets"] = mine
        self.extra_container_spec = spec

    async def _open_services(self, running) -> None:
        """What a crash left of this server goes first: its service would hold the old
        network."""
        await self._remove_service(self.service_name)
        await super()._open_services(running)

    async def _join_services(self) -> None:
        """Nothing to do: the spec already named the network and the secret."""

    async def _stop_services(self) -> None:
        """The server's own service first (a failed start leaves it): its task holds the
        network until it is gone."""
        await self._remove_service(self.service_name)
        await super()._stop_services()

    async def start_object(self):
        task = await self._wait_task(self.service_name, until_done=False)
        if task["Status"]["State"] != "running":
            raise hub_error(500, "The server did not start: "
                                 f"{task['Status'].get('Err') or task['Status']['State']}")
        where = await asyncio.to_thread(node, self.client, task["NodeID"])
        self.placed_on = where.describe() if where else task["NodeID"][:12]
        self.note_progress(f"Server placed on node {self.placed_on}")

    placed_on = ""  # the node this start's server runs on, as people read it

    @default("progress_ready_hook")
    def _ready_hook_default(self):
        return say_where  # the ready event names the node too (always sent, unlike notes)

    async def _wait_task(self, service: str, until_done: bool) -> dict:
        """The service's task once it runs (or, ``until_done``, once it ended); fails
        soon when no node fits, with Swarm's reason."""
        try:
            return await wait_task(
                self.client, service,
                lambda state: state in FINISHED or (state == "running" and not until_done),
                self.unschedulable_grace)
        except Unschedulable as e:
            await self._remove_service(service)
            raise hub_error(503, f"No node can take this server now: {e}") from None

    async def get_ip_and_port(self):
        """The node's address and the port published there (host mode)."""
        task = await self.get_task()
        ports = ((task or {}).get("Status", {}).get("PortStatus") or {}).get("Ports") or []
        where = await asyncio.to_thread(node, self.client, task["NodeID"]) if task else None
        for port in ports:
            if port.get("TargetPort") == self.port and where is not None:
                return where.address, port["PublishedPort"]
        raise hub_error(500, f"The server's port is not published on its node: {ports}")

    async def poll(self):
        """Stopped when the task ended or its node is down (its server is unreachable
        and will not come back by itself: its service is removed)."""
        task = await self.get_task()
        if not task:
            return 0
        state = task["Status"]["State"]
        if state not in {"running", "starting", "pending", "preparing", "assigned",
                         "accepted", "ready", "new"}:
            return f"task {state}: {task['Status'].get('Err') or ''}".strip()
        where = await asyncio.to_thread(node, self.client, task["NodeID"]) \
            if task.get("NodeID") else None
        if task.get("NodeID") and (where is None or where.state != "ready"):
            # over for good (restart condition none); removed now, so that a node that was
            # only cut off does not keep the server running when it comes back
            await self._remove_service(self.service_name)
            return f"its node {where.describe() if where else task['NodeID'][:12]} is down"
        return None

    async def remove_object(self):
        try:
            await super().remove_object()
        except (NotFound, APIError) as e:
            if getattr(e, "status_code", None) != 404:
                raise


def say_where(spawner, event: dict) -> dict:
    """The Hub's "Server ready" event, with the node the server runs on."""
    where = getattr(spawner, "placed_on", "")
    if where:
        event["message"] = f"{event.get('message', '')} (on node {where})"
        if event.get("html_message"):
            event["html_message"] += f" (on node {html.escape(where)})"
    return event
