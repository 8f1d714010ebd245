"""Starting and stopping environment servers for users, through the Hub's API.

What a server runs is the catalog's decision (``Catalog.launch_plan``); this module only
names servers and talks to the Hub. The Hub's spawner asks the catalog again when it
starts the server, so nothing here can launch what the user may not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import urllib.parse
from collections import defaultdict
from typing import Callable

from jupyterhub.utils import url_path_join

from .catalog import Catalog, Viewer
from .errors import Conflict, Forbidden, InputError, NotFound, ReesError
from .hpc.choice import cluster_request
from .hpc.settings import HpcSettings
from .hubapi import HubAPI
from .operations.quotas import StartingLaunches

log = logging.getLogger("tljh_rees.launcher")

# A server name JupyterHub 6 accepts (a "safe slug"), and so 5 too: 1 to 30 lowercase
# letters, digits and single hyphens, starting with a letter, ending with a letter or digit.
SERVER_NAME_RE = re.compile(r"^[a-z](?:-?[a-z0-9]){0,29}$")
SERVER_NAME_MAX = 30


def server_name_for(environment: str) -> str:
    """The default server name of an environment: its name where JupyterHub takes it,
    else a slug of it (cut to length, with a hash of the whole so that two environments
    never share one)."""
    if SERVER_NAME_RE.match(environment):
        return environment
    slug = re.sub(r"[^a-z0-9]+", "-", environment.lower()).strip("-")
    if not slug[:1].isalpha():
        slug = "env-" + slug
    digest = hashlib.sha256(environment.encode()).hexdigest()[:6]
    return f"{slug[:SERVER_NAME_MAX - 7].rstrip('-')}-{digest}"
CLUSTER_FIELDS = {"partition", "walltime", "cpus", "memory"}  # hpc/choice.py checks them
VISIBLE_WAIT = 10  # seconds a launch waits for the Hub to show the server as pending


def landing_path(urlpath: str = "", labpath: str = "", filepath: str = "") -> str:
    """The path under the server to open, as BinderHub's clients map a link's query:
    ``labpath`` (a file in JupyterLab) over ``filepath`` (classic tree) over ``urlpath``."""
    if labpath:
        path = "doc/tree/" + urllib.parse.quote(labpath.rstrip("/"))
    elif filepath:
        path = "tree/" + urllib.parse.quote(filepath.rstrip("/"))
    else:
        path = urlpath
    path = path.lstrip("/")
    # a scheme (``javascript:``, ``http:``) would make the browser leave the server
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path) or "://" in path or "\\" in path \
            or any(ord(c) < 32 for c in path):
        raise InputError("urlpath", "expected a path inside the server, like "
                                    "lab/tree/index.ipynb")
    return path


def application_json(user: str, server_name: str, server: dict) -> dict:
    options = server.get("user_options") or {}
    return {
        "id": server_name, "environment": options.get("environment"),
        "template": options.get("template"), "profile": options.get("profile"),
        "ready": server.get("ready", False),
        "pending": server.get("pending"), "started": server.get("started"),
        "location": server.get("url") or url_path_join("/user", user, server_name) + "/",
    }


class Launcher:
    ready_poll = 1.0  # seconds between looks at a starting server (launch metrics)
    ready_timeout = 900  # seconds after which a start is no longer watched

    def __init__(self, catalog: Catalog, hub: HubAPI, quotas=None, rebuild=None,
                 hpc: HpcSettings | None = None):
        self.catalog = catalog
        self.hub = hub
        self.hpc = hpc or HpcSettings()  # the cluster target's limits (rees.hpc)
        # ``BuildManager.rebuild_removed``: a launch of an environment whose image was
        # removed builds it again (None: it is only refused)
        self.rebuild = rebuild
        # ``operations.quotas.Quotas`` (None: no quotas): servers per user and launches
        # of one environment starting at once, checked before a new server starts.
        self.quotas = quotas
        self.starting = StartingLaunches()
        # Called with the seconds from a launch request to its server being ready, and
        # whether it was a pooled server (metrics).
        self.on_ready: list[Callable[[float, bool], None]] = []
        self._watches: set[asyncio.Task] = set()
        self._user_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @staticmethod
    def require_servers(viewer: Viewer) -> None:
        if not viewer.servers:
            raise Forbidden("this token may not start or stop your servers; use a token "
                            f"with the 'servers!user={viewer.name}' scope, or the Hub's "
                            "own pages")

    async def servers(self, viewer: Viewer) -> dict[str, dict]:
        user = await self.hub.user(viewer.name)
        return user.get("servers") or {}

    async def applications(self, viewer: Viewer) -> list[dict]:
        """The user's servers started from environments or templates."""
        return [application_json(viewer.name, name, server)
                for name, server in (await self.servers(viewer)).items()
                if {"environment", "template"} & set(server.get("user_options") or {})]

    async def application(self, viewer: Viewer, server_name: str) -> dict:
        server = (await self.servers(viewer)).get(server_name)
        if server is None:
            raise NotFound(f"you have no server {server_name!r}", field="id")
        return application_json(viewer.name, server_name, server)

    async def launch(self, viewer: Viewer, environment, profile=None,
                     server_name=None, cluster=None) -> tuple[dict, bool]:
        """Start (or find running) the user's named server of ``environment``.
        Returns its model and whether it was started now. ``cluster``: run it as a
        Slurm job with these choices (the Hub's spawner checks them: hpc/choice.py)."""
        since = time.monotonic()
        self.require_servers(viewer)
        plan = await self.plan_or_rebuild(
            environment, lambda: self.catalog.launch_plan(viewer, environment, profile or None))
        options = {"environment": plan.environment, **cluster_options(cluster, self.hpc)}
        if profile:
            options["profile"] = plan.profile["name"]
        return await self.start(viewer, server_name or server_name_for(plan.environment),
                                options, "environment", since)

    async def plan_or_rebuild(self, environment: str, plan: Callable):
        """``plan()``; if that finds the environment's image removed, start building it
        again (``rebuild``, the BuildManager's) and say so in the refusal."""
        try:
            return plan()
        except Conflict as e:
            build = await self.rebuild(environment) if self.rebuild else None
            if build is None:
                raise
            raise Conflict(f"the image of {environment!r} was removed from the engine (the "
                           f"disk garbage collector frees space so); it is being built again "
                           f"(build {build.id}): launch it again when that build is done",
                           field=e.field) from None

    async def start(self, viewer: Viewer, server_name, options: dict, kind: str,
                    since: float | None = None) -> tuple[dict, bool]:
        """Start the user's server ``server_name`` with ``options`` (an ``environment`` or
        a ``template``, named by ``options[kind]``), or find it running that already.
        ``since``: ``time.monotonic()`` of the request (launch metrics)."""
        since = time.monotonic() if since is None else since
        self.require_servers(viewer)
        if not isinstance(server_name, str) or not SERVER_NAME_RE.match(server_name):
            raise InputError("server_name", "expected 1 to 30 lowercase letters, digits and "
                                            "single '-', starting with a letter")
        # one launch of a user at a time, so two cannot both take the last place
        async with self._user_locks[viewer.name]:
            return await self._start(viewer, server_name, options, kind, since)

    async def _start(self, viewer: Viewer, server_name: str, options: dict, kind: str,
                     since: float) -> tuple[dict, bool]:
        servers = await self.servers(viewer)
        existing = servers.get(server_name)
        if existing:
            running = (existing.get("user_options") or {}).get(kind)
            if running != options[kind]:
                raise Conflict(f"a server named {server_name!r} already runs "
                               f"{running or 'something else'}; stop it or choose "
                               "another name", field="server_name")
            return application_json(viewer.name, server_name, existing), False
        environment = options[kind] if kind == "environment" else f"{kind}:{options[kind]}"
        if self.quotas is not None:
            self.quotas.check_servers(viewer, len(servers))
            self.quotas.check_launches(environment, self.starting.count(environment))
        key = f"{viewer.name}/{server_name}"
        self.starting.begin(key, environment)
        try:
            starting = asyncio.create_task(self.hub.start_server(viewer.name, server_name,
                                                                 options))
            # Once the Hub shows it pending, its progress page reports how the start ends.
            starting.add_done_callback(lambda task: task.cancelled() or task.exception())
            server = await self._until_visible(viewer, server_name, starting)
        except BaseException:
            self.starting.end(key)
            raise
        self.watch(viewer.name, server_name, since, key, server)
        return application_json(viewer.name, server_name, server), True

    # -- until ready (metrics, launches starting) -----------------------------------------

    def tell_ready(self, seconds: float, pooled: bool = False) -> None:
        for hook in self.on_ready:
            try:
                hook(seconds, pooled)
            except Exception:
                log.exception("on_ready hook failed")

    def watch(self, user: str, server_name: str, since: float, key: str,
              server: dict | None = None) -> None:
        """Note when the server the launch at ``since`` started is ready (or gone): a
        background look at the Hub every ``ready_poll`` seconds, unless ready now."""
        if server is not None and server.get("ready"):
            self.starting.end(key)
            self.tell_ready(time.monotonic() - since)
            return
        task = asyncio.create_task(self._watch(user, server_name, since, key))
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    async def _watch(self, user: str, server_name: str, since: float, key: str) -> None:
        try:
            while time.monotonic() - since < self.ready_timeout:
                await asyncio.sleep(self.ready_poll)
                try:
                    server = ((await self.hub.user(user)).get("servers") or {}).get(
                        server_name)
                except ReesError as e:
                    if e.status == 404:
                        return  # the user is gone (a temporary user removed)
                    continue
                except Exception:  # the Hub restarting
                    continue
                if server is not None and server.get("ready"):
                    self.tell_ready(time.monotonic() - since)
                    return
                if server is None or not server.get("pending"):
                    return  # the start failed or the server was stopped
        finally:
            self.starting.end(key)

    async def _until_visible(self, viewer: Viewer, server_name: str,
                             starting: asyncio.Task) -> dict:
        """The server's model once the Hub shows it (pending or ready): a page can then
        follow its progress. Errors of the start itself are raised."""
        for _ in range(VISIBLE_WAIT * 10):
            done, _ = await asyncio.wait([starting], timeout=0.1)
            if done:
                starting.result()  # raises what the Hub said
            server = (await self.servers(viewer)).get(server_name)
            if server and (server.get("pending") or server.get("ready")):
                return server
        await starting
        return (await self.servers(viewer)).get(server_name, {})

    async def stop(self, viewer: Viewer, server_name: str) -> None:
        self.require_servers(viewer)
        if server_name not in await self.servers(viewer):
            raise NotFound(f"you have no server {server_name!r}", field="id")
        await self.hub.stop_server(viewer.name, server_name)


def cluster_options(cluster, hpc: HpcSettings) -> dict:
    """The applications API's ``cluster`` object as the spawner's ``user_options``,
    checked here as the spawner checks them (``hpc/choice.py``), so that a bad choice is
    refused by this request and not only on the server's progress page."""
    if cluster is None:
        return {}
    if not isinstance(cluster, dict):
        raise InputError("cluster", "expected an object of partition, walltime, cpus, "
                                    "memory (each optional), or null")
    unknown = sorted(set(cluster) - CLUSTER_FIELDS)
    if unknown:
        raise InputError(f"cluster.{unknown[0]}", "unknown field; known: "
                                                   + ", ".join(sorted(CLUSTER_FIELDS)))
    options = {"target": "cluster",
               **{k: str(v) for k, v in cluster.items() if v is not None}}
    try:
        cluster_request(options, hpc)
    except InputError as e:
        raise InputError(f"cluster.{e.field}" if e.field != "target" else "cluster",
                         e.message) from None
    return options
