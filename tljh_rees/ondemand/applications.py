"""Applications (seed 004): servers launched from templates.

A logged-in caller gets a named server of their own, with their storage, like any
launch. An anonymous caller (when the admin allows it, for templates marked
``anonymous``) gets a temporary user's server: a warm one from the template's pool if
one is available, else a new one; either way with a token that may use only that server
(and look at or stop it here).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse

from jupyterhub.utils import url_path_join
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import LoggingConfigurable

from ..catalog import Viewer
from ..catalog.templates import TemplateCatalog
from ..errors import Conflict, Forbidden, NotFound, ReesError
from ..hubapi import HubAPI
from ..launcher import Launcher, application_json, server_name_for
from ..store.models import Template, TemporaryUser, iso
from .limits import RateLimit, check_cap
from .pools import PoolManager
from .temporary import TemporaryUsers

log = logging.getLogger("tljh_rees.ondemand")


class Applications(LoggingConfigurable):
    anonymous_enabled = Bool(False, config=True,
                             help="Whether visitors without an account may launch templates "
                                  "marked anonymous (rees.anonymous.enabled).")
    max_anonymous = Integer(10, config=True,
                            help="Anonymous servers in use at once, over all templates "
                                 "(rees.anonymous.max_servers); 0 for no cap.")
    launches_per_hour = Integer(
        30, config=True,
        help="Anonymous launches per client address per hour "
             "(rees.anonymous.launches_per_hour); 0 for no cap.")
    trusted_proxies = List(
        Unicode(), ["127.0.0.0/8", "::1/128"], config=True,
        help="Networks of the proxies in front of the service (the Hub's proxy, TLJH's "
             "traefik): a client's address is the nearest X-Forwarded-For hop outside them.")

    def __init__(self, templates: TemplateCatalog, temporary: TemporaryUsers,
                 pools: PoolManager, hub: HubAPI, launcher: Launcher, base_url: str,
                 hub_prefix: str, **kwargs):
        super().__init__(**kwargs)
        self.templates = templates
        self.temporary = temporary
        self.pools = pools
        self.hub = hub
        self.launcher = launcher
        self.base_url = base_url
        self.hub_prefix = hub_prefix
        self.rate = RateLimit(self.launches_per_hour)
        self._counting = asyncio.Lock()

    def resize_pool(self, viewer: Viewer, name: str, size) -> dict:
        """Pools serve anonymous visitors only: refused while anonymous launches are off."""
        self.pools.require_admin(viewer)
        if not self.anonymous_enabled:
            raise Conflict("pooled servers are for anonymous visitors, and anonymous "
                           "launches are off; set rees.anonymous.enabled to true first",
                           field="template")
        return self.pools.resize(viewer, name, size)

    async def remove_template(self, viewer: Viewer, name: str) -> None:
        """Delete a template with its pool, and remove its temporary users (people's own
        servers of it are stopped by the culler's next round)."""
        template = self.templates.get(viewer, name)
        rows = self.temporary.live(template.id)
        self.templates.remove(viewer, name)
        for row in rows:
            task = self.pools.starting.pop(row.name, None)
            if task:
                task.cancel()
        await asyncio.gather(*(self.temporary.remove(r.name, "its template was deleted")
                               for r in rows))

    # -- launching ------------------------------------------------------------------------

    async def launch(self, viewer: Viewer | None, name: str, client: str) -> tuple[dict, bool]:
        """Launch template ``name`` for ``viewer`` (None: an anonymous visitor from address
        ``client``). Returns the application and whether it was started now."""
        since = time.monotonic()
        if viewer is None:
            return await self._launch_anonymous(name, client, since), True
        self.launcher.require_servers(viewer)
        template = self.templates.get(viewer, name)
        await self._plan(template, lambda: self.templates.plan(viewer, name))
        server_name = server_name_for(template.name)
        running = (await self.launcher.servers(viewer)).get(server_name)
        if not running:
            await self._check_template_cap(template)
        app, started = await self.launcher.start(viewer, server_name,
                                                 {"template": template.name}, "template",
                                                 since)
        return self._with_progress(app, viewer.name, server_name), started

    async def _launch_anonymous(self, name: str, client: str, since: float) -> dict:
        if not self.anonymous_enabled:
            raise Forbidden("anonymous launches are off on this Hub "
                            "(rees.anonymous.enabled); log in to launch templates")
        try:
            template = self.templates.get(None, name)
        except NotFound:
            raise NotFound(f"no template {name!r} open to anonymous visitors; log in to "
                           "launch others", field="template") from None
        await self._plan(template, lambda: self.templates.plan(
            Viewer(""), name, self._as_temporary(template)))
        async with self._counting:  # two launches never both take the last place
            self.rate.check(client)
            check_cap(self.temporary.count_claimed(), self.max_anonymous,
                      "anonymous servers", "rees.anonymous.max_servers")
            await self._check_template_cap(template)
            self.rate.record(client)
            row = await self.pools.claim(template)
            pooled = row is not None
            environment = f"template:{template.name}"
            if row is None:
                quotas = self.launcher.quotas
                if quotas is not None:  # a new server starts (a pooled one is ready)
                    quotas.check_launches(environment,
                                          self.launcher.starting.count(environment))
                row = self.temporary.add(template, pooled=False)
        if not pooled:
            try:
                await self.hub.create_user(row.name)
            except ReesError:
                self.temporary.set_state(row.name, "gone")
                raise
            starting = asyncio.create_task(self.hub.start_server(row.name, "",
                                                                 {"template": template.name}))
            starting.add_done_callback(lambda task: task.cancelled() or task.exception())
            self.launcher.starting.begin(row.name, environment)
            self.launcher.watch(row.name, "", since, row.name)
        else:
            self.launcher.tell_ready(time.monotonic() - since, pooled=True)
        token = await self.temporary.token(row)
        log.info("anonymous launch of %s: %s (%s)", template.name, row.name,
                 "from the pool" if pooled else "new server")
        app = self.temporary_json(row, ready=pooled)
        app.update(token=token, pooled=pooled)
        return app

    async def _plan(self, template: Template, plan) -> None:
        """May they, and is it launchable: say so now (a template's environment whose image
        was removed is built again, as a launch of the environment does)."""
        if template.image_kind == "environment":
            await self.launcher.plan_or_rebuild(template.image_name, plan)
        else:
            plan()

    @staticmethod
    def _as_temporary(template: Template) -> TemporaryUser:
        return TemporaryUser(name="", template_id=template.id, template=template.name)

    async def _check_template_cap(self, template: Template) -> None:
        """People's servers of the template (from the Hub) and its claimed anonymous ones
        (from the database, so a launch that has not reached the Hub yet counts)."""
        if not template.max_servers:
            return
        temporary = {r.name for r in self.temporary.live()}
        in_use = self.temporary.count_claimed(template.id) + sum(
            (s.get("user_options") or {}).get("template") == template.name
            for user in await self.hub.active_users() if user["name"] not in temporary
            for s in (user.get("servers") or {}).values())
        check_cap(in_use, template.max_servers, f"servers of template {template.name}",
                  "the template's max-servers")

    # -- looking and stopping -------------------------------------------------------------

    async def list(self, viewer: Viewer, name: str) -> list[dict]:
        """The caller's applications of template ``name``; every one, for admins."""
        template = self._visible(viewer, name)
        temporary = self.temporary.get(viewer.name)
        if temporary is not None:
            return [await self.get(viewer, name, viewer.name)] \
                if temporary.template == template.name else []
        if not viewer.admin:
            return [self._with_progress(app, viewer.name, app["id"])
                    for app in await self.launcher.applications(viewer)
                    if app.get("template") == template.name]
        found = []
        unclaimed = {r.name for r in self.temporary.live(template.id,
                                                          states=("warming", "available"))}
        for user in await self.hub.active_users():
            if user["name"] in unclaimed:
                continue
            for server_name, server in (user.get("servers") or {}).items():
                if (server.get("user_options") or {}).get("template") == template.name:
                    app = application_json(user["name"], server_name, server)
                    if self.temporary.get(user["name"]) is not None:
                        app["id"] = user["name"]
                    found.append({**app, "user": user["name"]})
        return found

    async def get(self, viewer: Viewer, name: str, app_id: str, user: str = "") -> dict:
        template = self._visible(viewer, name)
        owner, server_name = self._locate(viewer, app_id, user)
        temporary = self.temporary.get(owner)
        try:
            server = ((await self.hub.user(owner)).get("servers") or {}).get(server_name)
        except ReesError as e:
            if e.status != 404:
                raise
            server = None
        if server is None or (server.get("user_options") or {}).get("template") \
                != template.name or (temporary is not None and temporary.state != "claimed"):
            raise NotFound(f"no application {app_id!r} of template {name!r}", field="id")
        if temporary is not None:
            return self.temporary_json(temporary, server)
        return self._with_progress(application_json(owner, server_name, server), owner,
                                   server_name)

    async def stop(self, viewer: Viewer, name: str, app_id: str, user: str = "") -> None:
        await self.get(viewer, name, app_id, user)  # theirs, of this template
        owner, server_name = self._locate(viewer, app_id, user)
        if self.temporary.get(owner) is not None:
            await self.temporary.remove(owner, "stopped through the API")
        elif owner == viewer.name:
            await self.launcher.stop(viewer, server_name)
        else:
            await self.hub.stop_server(owner, server_name)  # an admin's

    def _visible(self, viewer: Viewer, name: str) -> Template:
        temporary = self.temporary.get(viewer.name)
        if temporary is not None:  # an anonymous visitor's token
            template = self.templates.find(name)
            if template is None or template.id != temporary.template_id:
                raise NotFound(f"no template {name!r}", field="template")
            return template
        return self.templates.get(viewer, name)

    def _locate(self, viewer: Viewer, app_id: str, user: str) -> tuple[str, str]:
        """(user, server name) of an application id: a temporary user's name, or one of
        the caller's server names (an admin may name another ``user``)."""
        if self.temporary.get(app_id) is not None and (viewer.admin or viewer.name == app_id):
            return app_id, ""
        if user and user != viewer.name:
            if not viewer.admin:
                raise Forbidden("only admins may look at others' applications", field="user")
            return user, app_id
        return viewer.name, app_id

    # -- JSON -----------------------------------------------------------------------------

    def temporary_json(self, row: TemporaryUser, server: dict | None = None,
                       ready: bool | None = None) -> dict:
        server = server or {}
        return self._with_progress({
            "id": row.name, "template": row.template, "environment": None, "profile": None,
            "ready": server.get("ready", False) if ready is None else ready,
            "pending": server.get("pending"),
            "started": server.get("started") or iso(row.claimed),
            "location": url_path_join(self.base_url, "user", row.name) + "/",
        }, row.name, "")

    def _with_progress(self, app: dict, user: str, server_name: str) -> dict:
        """Where the Hub streams the start's progress (until it is ready)."""
        if not app.get("ready"):
            quoted = urllib.parse.quote(user, safe="")
            path = f"api/users/{quoted}/servers/{urllib.parse.quote(server_name, safe='')}" \
                   "/progress" if server_name else f"api/users/{quoted}/server/progress"
            app["progress"] = url_path_join(self.hub_prefix, path)
        return app
