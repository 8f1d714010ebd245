"""Launching environments: the applications API and shareable launch links.

A launch link (``launch/<environment>?profile=&urlpath=``) may come from any web page,
so opening it starts nothing: it shows what would start (with the user's storage) and a
button. The button posts back here (with the page's XSRF token), the server starts, and
the browser follows its progress on the Hub's own page until ``urlpath`` opens.
"""

from __future__ import annotations

import time
import urllib.parse

from jupyterhub.utils import url_path_join
from tornado import web

from ..launcher import Launcher, landing_path, server_name_for
from .base import APIHandler
from .pages import PageHandler


class LaunchMixin:
    @property
    def launcher(self) -> Launcher:
        return self.settings["launcher"]


class ApplicationsHandler(LaunchMixin, APIHandler):
    @web.authenticated
    async def get(self):
        self.write_json({"applications": await self.launcher.applications(self.viewer)})

    @web.authenticated
    async def post(self):
        began = time.monotonic()
        data = self.json_body({"environment", "server_name", "profile", "cluster"},
                              required={"environment"})
        app, started = await self.launcher.launch(self.viewer, data.get("environment"),
                                                  data.get("profile"),
                                                  data.get("server_name"),
                                                  cluster=data.get("cluster"))
        self.note_launch(began, data["environment"])
        self.write_json(app, status=201 if started else 200)


class LaunchHandler(LaunchMixin, PageHandler):
    def _server_url(self, environment: str, urlpath: str) -> str:
        user = urllib.parse.quote(self.user_name, safe="")
        return url_path_join(self.urls.base_url, "user", user, environment, urlpath)

    @web.authenticated
    async def get(self, environment):
        profile = self.get_argument("profile", "")
        plan = await self.launcher.plan_or_rebuild(environment, lambda: self.catalog.launch_plan(
            self.viewer, environment, profile or None))
        urlpath = landing_path(urlpath=self.get_argument("urlpath", ""))
        server = server_name_for(plan.environment)
        running = (await self.launcher.servers(self.viewer)).get(server)
        if running and running.get("ready") and \
                (running.get("user_options") or {}).get("environment") == plan.environment:
            self.redirect(self._server_url(server, urlpath))  # starts nothing
            return
        env = self.catalog.get(self.viewer, plan.environment)
        self.render_page("launch.html", environment=env, urlpath=urlpath,
                         selected_profile=plan.profile["name"] if plan.profile else "",
                         **self.profiles_context())

    @web.authenticated
    async def post(self, environment):
        began = time.monotonic()
        profile = self.get_body_argument("profile", "")
        urlpath = landing_path(urlpath=self.get_body_argument("urlpath", ""))
        app, _ = await self.launcher.launch(self.viewer, environment, profile or None)
        self.note_launch(began, environment)
        next_url = self._server_url(app["id"], urlpath)
        if app["ready"]:
            self.redirect(next_url)
            return
        user = urllib.parse.quote(self.user_name, safe="")
        pending = url_path_join(self.urls.hub_prefix, "spawn-pending", user, app["id"])
        self.redirect(f"{pending}?{urllib.parse.urlencode({'next': next_url})}")


def routes() -> list:
    return [
        ("api/applications", ApplicationsHandler),
        (r"launch/([a-z0-9._-]+)", LaunchHandler),
    ]
