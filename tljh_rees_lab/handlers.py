"""The server's routes under ``rees-lab/``: the frontend's only way to the service.

Each request is the server owner's (Jupyter Server authenticates it); the service is
called with the server's own Hub token, whose scopes the Hub limits to what the owner may
do (so a user without the build permission cannot build through here either).
"""

from __future__ import annotations

import json
import os
import re

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .folder import FolderError, check_limits, collect, zip_files
from .service import ReesClient, ServiceError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
NOT_STARTED_BY_REES = ("This server was not started by the tljh-rees service, so it cannot "
                       "reach it.")


class LabHandler(APIHandler):
    @property
    def rees(self):
        return self.settings["tljh_rees_lab_client"]

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, (ServiceError, FolderError)):
            body = {"error": str(exc), "status": status_code}
            body.update(getattr(exc, "details", {}) or {})
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    def fail(self, exc):
        self.set_status(exc.status)
        self.write_error(exc.status, exc_info=(type(exc), exc, None))

    def body(self):
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise FolderError("expected a JSON object") from None
        if not isinstance(data, dict):
            raise FolderError("expected a JSON object")
        return data

    def folder(self, data):
        """The chosen folder, inside the server's root folder and not a link out of it."""
        path = data.get("path")
        if not isinstance(path, str):
            raise FolderError("path: expected the folder's path in the file browser")
        root = os.path.realpath(self.settings["server_root_dir"])
        full = os.path.realpath(os.path.join(root, path.strip("/")))
        if full != root and not full.startswith(root + os.sep):
            raise FolderError("path: {!r} is outside the server's files".format(path))
        if not os.path.isdir(full):
            raise FolderError("path: {!r} is not a folder".format(path), status=404)
        return full

    async def packed(self, data):
        """(zip bytes, summary) of the chosen folder, within the service's limits."""
        full = self.folder(data)
        user = await self.rees.json("GET", "api/user")
        limits = user["import_limits"]
        collected = collect(full, limits["max_file_bytes"], limits["max_files"])
        check_limits(collected, limits)
        return zip_files(full, collected), collected.summary()

    @staticmethod
    def name(data):
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name) or len(name) > 63:
            raise FolderError("name: expected lowercase letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit (at most 63)")
        return name


class StatusHandler(LabHandler):
    """Who the owner is on the service and whether they may build (and if not, why)."""

    @web.authenticated
    async def get(self):
        if self.rees is None:
            self.finish(json.dumps({"available": False, "reason": NOT_STARTED_BY_REES}))
            return
        try:
            user = await self.rees.json("GET", "api/user")
        except ServiceError as e:
            self.finish(json.dumps({"available": False, "reason": str(e)}))
            return
        user.update(available=True, prefix=self.rees.public_prefix)
        self.finish(json.dumps(user))


class InspectHandler(LabHandler):
    """What the folder holds and what repo2docker would do with it; nothing is saved."""

    @web.authenticated
    async def post(self):
        try:
            data = self.body()
            archive, summary = await self.packed(data)
            name = data.get("name") if isinstance(data.get("name"), str) else ""
            checked = await self.rees.json(
                "POST", "api/specs/import", body=archive, content_type="application/zip",
                query={"dry_run": "1", "name": name})
        except (FolderError, ServiceError) as e:
            return self.fail(e)
        checked["folder"] = summary
        self.finish(json.dumps(checked))


class BuildHandler(LabHandler):
    """The folder becomes a spec version (a new spec, or a new version of the owner's
    spec of that name), which is then built into the environment of that name."""

    @web.authenticated
    async def post(self):
        try:
            data = self.body()
            name = self.name(data)
            archive, summary = await self.packed(data)
            query = {"name": name}
            if isinstance(data.get("description"), str) and data["description"].strip():
                query["description"] = data["description"].strip()
            spec = await self.rees.json("POST", "api/specs/import", body=archive,
                                        content_type="application/zip", query=query)
            options = {"version": spec.get("version")}
            if data.get("profile"):
                options["profile"] = data["profile"]
            if "public" in data:
                options["public"] = bool(data["public"])
            build = await self.rees.json("POST", "api/specs/{}/builds".format(name),
                                         body=json.dumps(options).encode(),
                                         content_type="application/json")
        except (FolderError, ServiceError) as e:
            return self.fail(e)
        prefix = self.rees.public_prefix
        self.set_status(202)
        self.finish(json.dumps({
            "build": build, "spec": spec.get("name"), "version": spec.get("version"),
            "folder": summary,
            "links": {"launch": prefix + "launch/" + build["environment"],
                      "composer": prefix + "composer/" + spec.get("name", name),
                      "environment": prefix + "?environment=" + build["environment"]},
        }))


class BrowserGone(Exception):
    """Raised in the relay's callback once the browser left: it ends the request to the
    service at its next chunk (at most one keepalive period later)."""


class EventsHandler(LabHandler):
    """The build's live log: the service's event stream, passed on as it comes, until
    the build ends or the browser leaves."""

    browser_gone = False

    def on_connection_close(self):
        self.browser_gone = True

    @web.authenticated
    async def get(self, build_id):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        headers = {}
        last = self.request.headers.get("Last-Event-ID")
        if last and last.isdigit():
            headers["Last-Event-ID"] = last

        def forward(chunk):
            if self.browser_gone:
                raise BrowserGone()
            self.write(chunk)
            self.flush()

        try:
            await self.rees.stream("api/builds/{}/events".format(build_id), headers, forward)
        except Exception as e:  # noqa: BLE001 (Tornado ends the fetch with its own error)
            if self.browser_gone:
                return  # nobody to tell
            if not isinstance(e, ServiceError):
                raise
            self.write("event: error\ndata: {}\n\n".format(json.dumps({"error": str(e)})))
        self.finish()


def setup_handlers(server_app):
    web_app = server_app.web_app
    client = ReesClient.from_environment(os.environ)
    web_app.settings["tljh_rees_lab_client"] = client
    base = url_path_join(web_app.settings["base_url"], "rees-lab")
    web_app.add_handlers(".*$", [
        (url_path_join(base, "status"), StatusHandler),
        (url_path_join(base, "inspect"), InspectHandler),
        (url_path_join(base, "build"), BuildHandler),
        (url_path_join(base, r"builds/([0-9a-f]+)/events"), EventsHandler),
    ])
    if client is None:
        server_app.log.info("tljh_rees_lab: %s", NOT_STARTED_BY_REES)
