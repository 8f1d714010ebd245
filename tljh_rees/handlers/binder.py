"""Binder links, compatible with BinderHub's clients: ``v2/<provider>/<spec>`` (a page),
``build/<provider>/<spec>`` (its event stream, field for field), ``api/repoproviders``
and ``badge_logo.svg``.

Like BinderHub, the stream answers every problem as a ``failed`` event on an HTTP 200
(clients read events, not statuses), re-reads the spec from the raw path (a ``gl`` or
``git`` spec holds URL-escaped slashes) and sends ``:keepalive`` comments while quiet.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse

from tornado import web
from tornado.iostream import StreamClosedError

from ..binder.links import BinderLinks, environment_name
from ..launcher import landing_path
from ..builds.events import stream
from ..errors import ReesError
from .base import APIHandler, BaseHandler, error_message
from .pages import PageHandler

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
PHASES = {"queued": "waiting", "running": "fetching", "building": "building",
          "built": "built", "failed": "failed", "cancelled": "failed"}


class BinderMixin:
    @property
    def links(self) -> BinderLinks:
        return self.settings["binder"]

    def raw_spec(self, provider: str) -> str:
        """The spec as the link wrote it, after ``<route>/<provider>/`` (not unescaped)."""
        route = self.route_name
        marker = f"/{route}/{provider}/"
        return self.request.path.split(marker, 1)[1] if marker in self.request.path else ""



class CrossOriginMixin:
    """Pages of the admin's ``rees.binder.cors_allow_origin`` may call this route."""

    def allow_cross_origin(self) -> None:
        origin = self.links.cors_allow_origin
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Headers", "cache-control, authorization")
            if origin != "*":
                self.set_header("Vary", "Origin")

    def options(self, *args):
        """CORS preflight (clients send the token in an Authorization header)."""
        self.allow_cross_origin()
        self.set_header("Access-Control-Allow-Methods", "GET, OPTIONS")
        self.set_status(204)
        self.finish()


class BuildStreamHandler(CrossOriginMixin, BinderMixin, BaseHandler):
    route_name = "build"

    def set_default_headers(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.allow_cross_origin()

    def get_login_url(self):
        raise web.HTTPError(403, "Log in to the Hub, or send a token of yours "
                                 "(Authorization: token …), to use this link.")

    def write_error(self, status_code, **kwargs):
        """Every problem is an event (on a 200), as BinderHub's clients expect."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_status(200)
        self.finish(self.event({"phase": "failed", "status_code": status_code,
                                "message": error_message(status_code, exc) + "\n"}))

    @staticmethod
    def event(data: dict) -> str:
        return f"data: {json.dumps(data)}\n\n"

    async def emit(self, data: dict) -> None:
        self.write(self.event(data))
        await self.flush()

    @web.authenticated
    async def get(self, provider, _spec):
        accepted = {part.strip().lower() for part in
                    self.request.headers.get("Accept", "").replace(",", ";").split(";")}
        if "text/event-stream" not in accepted:
            raise web.HTTPError(400, "Missing Accept header: text/event-stream")
        keepalive = asyncio.ensure_future(self._keepalive())
        try:
            await self._build_and_launch(provider, self.raw_spec(provider))
        except ReesError as e:
            await self.emit({"phase": "failed", "status_code": e.status,
                             "message": str(e) + "\n"})
        except StreamClosedError:
            return  # the client left
        finally:
            keepalive.cancel()
        self.finish()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.settings["event_keepalive"])
            self.write(":keepalive\n\n")
            await self.flush()

    async def _build_and_launch(self, provider: str, spec: str) -> None:
        resolved = await self.links.resolve(provider, spec)
        build = await self.links.build(resolved, self.viewer)
        if build.status == "built":
            image = build.image
            await self.emit({"phase": "built", "imageName": image,
                             "message": "Found built image, launching...\n"})
        else:
            image = await self._follow(build)
        if self.get_argument("build_only", "").lower() == "true":
            await self.emit({"phase": "ready", "imageName": image,
                             "message": "Done! Image built\n"})
            return
        await self._launch(resolved, environment_name(resolved), image)

    async def _follow(self, build) -> str:
        """Relay the build's events as BinderHub phases; the image once built."""
        waiting = {"phase": "waiting", "message": "Waiting for build to start...\n"}
        await self.emit(waiting)
        async for batch in stream(self.settings["logs"], build.id,
                                  self.builds.live_events(build.id)):
            for event in batch:
                if event.get("type") == "log":
                    await self.emit({"phase": "building", "message": event["message"]})
                    continue
                phase = PHASES.get(event.get("phase"), "unknown")
                if phase == "built":
                    image = self.builds.record(build.id).image
                    await self.emit({"phase": "built", "imageName": image,
                                     "message": "Built image, launching...\n"})
                    return image
                if phase == "failed":
                    raise ReesError(event.get("message") or "the build failed", status=500)
                if phase != "waiting":
                    await self.emit({"phase": phase,
                                     "message": (event.get("message") or "") + "\n"})
        raise ReesError("the build's events ended without a result; try again", status=500)

    async def _launch(self, resolved, name: str, image: str) -> None:
        user = self.user_name
        await self.emit({"phase": "launching", "message": "Launching server...\n"})
        app, _ = await self.settings["launcher"].launch(self.viewer, name)
        server = app["id"]
        if not app["ready"]:
            async for event in self.settings["hub"].progress(user, server):
                if event.get("failed"):
                    raise ReesError(event.get("message") or "the server did not start",
                                    status=500)
                await self.emit({"phase": "launching",
                                 "message": (event.get("message") or "").rstrip() + "\n"})
        token = await self.settings["hub"].server_token(
            user, server, note=f"Binder link {resolved.provider}/{resolved.spec}")
        host = f"{self.request.protocol}://{self.request.host}{self.urls.base_url}"
        url = f"{host.rstrip('/')}/user/{urllib.parse.quote(user, safe='@~')}/{server}/"
        await self.emit({
            "phase": "ready", "message": f"server running at {url}\n", "image": image,
            "repo_url": resolved.repo_url, "token": token,
            "binder_ref_url": resolved.ref_url,
            "binder_launch_host": f"{host.rstrip('/')}{self.urls.service_prefix}",
            "binder_request": f"v2/{resolved.provider}/{resolved.spec}",
            "binder_persistent_request": f"v2/{resolved.provider}/{resolved.resolved_spec}",
            "binder_client_ip": self.request.remote_ip, "url": url})


class LaunchPageHandler(BinderMixin, PageHandler):
    """``v2/<provider>/<spec>?urlpath=|labpath=|filepath=``: the build's log while it is
    built, then the server (the page follows ``build/…`` itself)."""

    route_name = "v2"

    @web.authenticated
    def get(self, provider, _spec):
        self.links.provider(provider)  # an unknown provider is a 404 page
        spec = self.raw_spec(provider).rstrip("/")
        path = landing_path(self.get_argument("urlpath", ""), self.get_argument("labpath", ""),
                            self.get_argument("filepath", ""))
        self.render_page("binder.html", active="binder", provider=provider, spec=spec,
                         build_url=self.urls("build", provider, spec), landing_path=path)


class RepoProvidersHandler(CrossOriginMixin, BinderMixin, APIHandler):
    """The providers this Hub answers, as BinderHub lists them (no login needed)."""

    route_name = "api"

    def set_default_headers(self):
        super().set_default_headers()
        self.allow_cross_origin()

    def get(self):
        self.write_json([p.display_config() for p in self.links.enabled.values()])


class BadgeHandler(web.RequestHandler):
    """``badge_logo.svg``: the "launch | binder" badge for READMEs."""

    def get(self):
        self.set_header("Content-Type", "image/svg+xml")
        self.set_header("Cache-Control", "public, max-age=86400")
        with open(os.path.join(STATIC, "badge_logo.svg"), "rb") as f:
            self.finish(f.read())


def routes() -> list:
    spec = r"(.+)"
    return [
        (r"build/([^/]+)/" + spec, BuildStreamHandler),
        (r"v2/([^/]+)/" + spec, LaunchPageHandler),
        ("api/repoproviders", RepoProvidersHandler),
        ("badge_logo.svg", BadgeHandler),
    ]

