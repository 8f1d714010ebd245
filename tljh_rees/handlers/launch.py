"""Launching environments: the applications API and shareable launch links."""

from __future__ import annotations

import asyncio
import re
import urllib.parse

from jupyterhub.utils import url_path_join
from tornado import web

from ..engine.catalog import list_environments
from .base import APIHandler, BaseHandler, InputError

SERVER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


async def check_launchable(handler: BaseHandler, environment, profile) -> tuple[str, str]:
    """The environment and profile names, if this user may launch them; else 4xx."""
    if not isinstance(environment, str) or not environment:
        raise InputError("environment", "expected the name of a built environment")
    envs = await asyncio.to_thread(list_environments, handler.rees.docker_api())
    env = envs.get(environment)
    if env is None or not env.visible_to(handler.user_name, handler.is_admin):
        raise InputError("environment", f"no built environment named {environment!r}",
                         status=404)
    profile = profile or env.label("profile") or handler.rees.default_profile
    if profile and handler.rees.profile(profile) is None:
        names = ", ".join(p["name"] for p in handler.rees.profiles) or "none"
        raise InputError("profile", f"unknown profile {profile!r}; expected one of: {names}")
    return environment, profile


def application_json(rees, user: str, server_name: str, server: dict) -> dict:
    options = server.get("user_options") or {}
    return {
        "id": server_name, "environment": options.get("environment"),
        "profile": options.get("profile"), "ready": server.get("ready", False),
        "pending": server.get("pending"), "started": server.get("started"),
        "location": server.get("url") or url_path_join("/user", user, server_name) + "/",
    }


class ApplicationsHandler(APIHandler):
    @web.authenticated
    async def get(self):
        user = await self.rees.hub.user(self.user_name)
        apps = [application_json(self.rees, self.user_name, name, server)
                for name, server in (user.get("servers") or {}).items()
                if (server.get("user_options") or {}).get("environment")]
        self.write_json({"applications": apps})

    @web.authenticated
    async def post(self):
        data = self.json_body({"environment", "server_name", "profile"},
                              required={"environment"})
        environment, profile = await check_launchable(self, data.get("environment"),
                                                      data.get("profile"))
        server_name = data.get("server_name") or environment
        if not isinstance(server_name, str) or not SERVER_NAME_RE.match(server_name):
            raise InputError("server_name", "expected lowercase letters, digits, '.', '_' or "
                                            "'-' (at most 63)")
        user = await self.rees.hub.user(self.user_name)
        existing = (user.get("servers") or {}).get(server_name)
        if existing:
            running_env = (existing.get("user_options") or {}).get("environment")
            if running_env != environment:
                raise InputError("server_name", f"a server named {server_name!r} already runs "
                                                f"{running_env or 'another environment'}; stop it "
                                                "or choose another name", status=409)
        else:
            options = {"environment": environment}
            if profile:
                options["profile"] = profile
            await self.rees.hub.start_server(self.user_name, server_name, options)
            user = await self.rees.hub.user(self.user_name)
        server = (user.get("servers") or {}).get(server_name, {})
        self.write_json(application_json(self.rees, self.user_name, server_name, server),
                        status=201 if not existing else 200)


class ApplicationHandler(APIHandler):
    @web.authenticated
    async def get(self, server_name):
        user = await self.rees.hub.user(self.user_name)
        server = (user.get("servers") or {}).get(server_name)
        if server is None:
            raise InputError("id", f"you have no server {server_name!r}", status=404)
        self.write_json(application_json(self.rees, self.user_name, server_name, server))

    @web.authenticated
    async def delete(self, server_name):
        user = await self.rees.hub.user(self.user_name)
        if server_name not in (user.get("servers") or {}):
            raise InputError("id", f"you have no server {server_name!r}", status=404)
        await self.rees.hub.stop_server(self.user_name, server_name)
        self.set_status(202)
        self.finish()


class LaunchHandler(BaseHandler):
    """``launch/<environment>?profile=&urlpath=``: start or reuse a named server.

    The Hub's own spawn page does the rest: it starts the server with these options,
    shows progress while it starts, and then sends the browser to ``urlpath``.
    """

    @web.authenticated
    async def get(self, environment):
        environment, profile = await check_launchable(self, environment,
                                                      self.get_argument("profile", ""))
        urlpath = self.get_argument("urlpath", "").lstrip("/")
        if urlpath.startswith(("http:", "https:")) or "://" in urlpath or "\\" in urlpath:
            raise InputError("urlpath", "expected a path inside the server, like lab/tree/x.ipynb")
        user = urllib.parse.quote(self.user_name, safe="")
        next_url = url_path_join(self.rees.base_url, "user", user, environment, urlpath)
        query = {"environment": environment, "next": next_url}
        if profile:
            query["profile"] = profile
        spawn = url_path_join(self.rees.hub_prefix, "spawn", user, environment)
        self.redirect(f"{spawn}?{urllib.parse.urlencode(query)}")


def routes() -> list:
    return [
        ("api/applications", ApplicationsHandler),
        (r"api/applications/([^/]+)", ApplicationHandler),
        (r"launch/([a-z0-9._-]+)", LaunchHandler),
    ]
