"""JSON API of seed 004: templates, applications (launches of templates, also
anonymous ones) and pools; and ``servers/<name>``, the caller's own servers.

Anonymous callers reach only ``POST applications/<template>`` (and, with the token it
returns, their application). Pages of the admin's ``rees.binder.cors_allow_origin`` may
call the applications routes from the browser, as thebe-style pages do.
"""

from __future__ import annotations

import time

from tornado import web

from ..catalog import Viewer
from ..catalog.templates import TemplateCatalog, template_json
from ..errors import Forbidden
from ..ondemand.applications import Applications
from ..ondemand.limits import client_address
from ..ondemand.pools import PoolManager
from ..launcher import landing_path
from .base import APIHandler
from .pages import PageHandler, render_public

NAME = r"([a-z0-9][a-z0-9._-]*)"


def duration(seconds: int) -> str:
    """``90`` → ``1 min 30 s``, ``7200`` → ``2 h``: for people."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p) or "0 s"


class OnDemandHandler(APIHandler):
    @property
    def templates(self) -> TemplateCatalog:
        return self.settings["templates"]

    @property
    def applications(self) -> Applications:
        return self.settings["applications"]

    @property
    def pools(self) -> PoolManager:
        return self.settings["pools"]


class TemplatesHandler(OnDemandHandler):
    @web.authenticated
    def get(self):
        self.write_json({"templates": [template_json(t, self.templates.status(t))
                                       for t in self.templates.all(self.viewer)]})

    @web.authenticated
    def post(self):
        template = self.templates.register(self.viewer, self.json_body(set(), lax=True))
        self.set_header("Location", self.urls("api/templates", template.name))
        self.write_json(template_json(template, self.templates.status(template)), status=201)


class TemplateHandler(OnDemandHandler):
    @web.authenticated
    def get(self, name):
        template = self.templates.get(self.viewer, name)
        self.write_json(template_json(template, self.templates.status(template)))

    @web.authenticated
    def patch(self, name):
        template = self.templates.update(self.viewer, name, self.json_body(set(), lax=True))
        self.write_json(template_json(template, self.templates.status(template)))

    @web.authenticated
    async def delete(self, name):
        """The template, its pool, and its temporary users' servers (people's own servers
        of it are stopped by the culler's next round)."""
        await self.applications.remove_template(self.viewer, name)
        self.set_status(204)
        self.finish()


class TemplateStatusHandler(OnDemandHandler):
    @web.authenticated
    def get(self, name):
        self.write_json({"status": self.templates.status(self.templates.get(self.viewer, name))})


class CrossOrigin:
    """Browsers on the admin's allowed origin may launch, look at and stop applications
    with a token (never with the Hub's cookies: no credentials are allowed)."""

    def set_default_headers(self):
        super().set_default_headers()
        origin = self.settings["binder"].cors_allow_origin
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Headers", "authorization, content-type")
            self.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
            if origin != "*":
                self.set_header("Vary", "Origin")

    def options(self, *args):
        self.set_status(204)
        self.finish()


class ApplicationsOfTemplateHandler(CrossOrigin, OnDemandHandler):
    def caller(self) -> Viewer | None:
        """The logged-in caller, or None for an anonymous one. A token that was sent but
        not accepted is refused, never taken as anonymous."""
        if self.current_user:
            return self.viewer
        if self.request.headers.get("Authorization"):
            raise Forbidden("the token was not accepted by the Hub; send a valid token, or "
                            "none to launch anonymously")
        return None

    async def post(self, name):
        began = time.monotonic()
        self.json_body(set())  # no fields: the template decides everything
        address = client_address(self.request.remote_ip,
                                 self.request.headers.get("X-Forwarded-For", ""),
                                 self.applications.trusted_proxies)
        app, started = await self.applications.launch(self.caller(), name, address)
        self.note_launch(began, f"template {name}")
        self.write_json(app, status=201 if started else 200)

    @web.authenticated
    async def get(self, name):
        self.write_json({"applications": await self.applications.list(self.viewer, name)})


class ApplicationHandler(CrossOrigin, OnDemandHandler):
    @web.authenticated
    async def get(self, name, app_id):
        self.write_json(await self.applications.get(self.viewer, name, app_id,
                                                    self.get_argument("user", "")))

    @web.authenticated
    async def delete(self, name, app_id):
        await self.applications.stop(self.viewer, name, app_id, self.get_argument("user", ""))
        self.set_status(202)
        self.finish()


class PoolsHandler(OnDemandHandler):
    @web.authenticated
    def get(self):
        self.write_json({"pools": self.pools.all(self.viewer)})


class PoolHandler(OnDemandHandler):
    @web.authenticated
    def get(self, name):
        self.write_json(self.pools.one(self.viewer, name))

    @web.authenticated
    def post(self, name):
        data = self.json_body({"size"}, required={"size"})
        self.write_json(self.applications.resize_pool(self.viewer, name, data["size"]))

    @web.authenticated
    async def delete(self, name):
        await self.pools.remove(self.viewer, name)
        self.set_status(204)
        self.finish()


class TryPage(OnDemandHandler):
    """``try/<template>?urlpath=``: a link that gives any visitor a server of an anonymous
    template. The page itself starts nothing; its script launches (so link previews and
    crawlers do not), then opens the server with its token."""

    def set_default_headers(self):
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def get(self, name):
        urlpath = landing_path(urlpath=self.get_argument("urlpath", ""),
                               labpath=self.get_argument("labpath", ""),
                               filepath=self.get_argument("filepath", ""))
        if not self.applications.anonymous_enabled:
            raise Forbidden("anonymous launches are off on this Hub (rees.anonymous.enabled)")
        template = self.templates.get(None, name)
        self.finish(render_public(
            "try.html", template=template, urlpath=urlpath,
            idle=duration(template.cull_timeout) if template.cull_timeout else "a while",
            api=self.urls("api/applications", template.name),
            hub_prefix=self.urls.hub_prefix, static_url=self.static_url))

    def write_error(self, status_code, **kwargs):
        PageHandler.write_error(self, status_code, **kwargs)


class ServerHandler(APIHandler):
    """One of the caller's servers started from an environment or a template (formerly
    ``applications/<server_name>``)."""

    @property
    def launcher(self):
        return self.settings["launcher"]

    @web.authenticated
    async def get(self, server_name):
        self.write_json(await self.launcher.application(self.viewer, server_name))

    @web.authenticated
    async def delete(self, server_name):
        await self.launcher.stop(self.viewer, server_name)
        self.set_status(202)
        self.finish()


def routes() -> list:
    return [
        ("api/templates", TemplatesHandler),
        (rf"api/templates/{NAME}", TemplateHandler),
        (rf"api/templates/{NAME}/status", TemplateStatusHandler),
        (rf"api/applications/{NAME}", ApplicationsOfTemplateHandler),
        (rf"api/applications/{NAME}/([a-z0-9][a-z0-9-]*)", ApplicationHandler),
        ("api/pools", PoolsHandler),
        (rf"api/pools/{NAME}", PoolHandler),
        (r"api/servers/([^/]+)", ServerHandler),
        (rf"try/{NAME}", TryPage),
    ]
