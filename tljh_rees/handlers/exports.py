"""Export for HPC: start an environment's SIF export, follow it, download the file.

Anyone who can see an environment may follow and download its exports; starting one
(which takes minutes of CPU and gigabytes of disk) needs the build permission. The SIF
is made once per image and shared.
"""

from __future__ import annotations

import os

from tornado import web

from ..errors import Conflict, NotFound
from ..export.jobs import ExportManager
from ..store.models import Environment
from .base import APIHandler, InputError
from .pages import PageHandler

CHUNK = 1024 * 1024


class ExportAccess:
    """Finding environments and exports the current user may see."""

    @property
    def exports(self) -> ExportManager:
        return self.settings["exports"]

    def built_environment(self, name: str) -> Environment:
        env = self.catalog.get(self.viewer, name)
        if not env.launchable:
            raise Conflict(f"{name!r} has no built image to export", field="name")
        return env

    def visible_export(self, export_id: str) -> dict:
        job = self.exports.get(export_id)
        if job is not None:
            try:
                self.catalog.get(self.viewer, job["environment"])
                return job
            except NotFound:
                pass
        raise NotFound(f"no export {export_id}", field="id")

    def export_json(self, job: dict) -> dict:
        base = f"{self.request.protocol}://{self.request.host}"
        download = self.urls("api/exports", job["id"], "download")
        data = dict(job)
        data["url"] = self.urls("api/exports", job["id"])
        data["download_url"] = download if job["status"] == "done" else None
        commands = {}
        if job["status"] == "done":
            commands["download"] = (
                f'curl -fL -o {job["filename"]} -H "Authorization: token '
                f'$JUPYTERHUB_API_TOKEN" {base}{download}')
            commands["run"] = f"apptainer run {job['filename']}"
            if job.get("pull_command"):
                commands["pull"] = job["pull_command"]
        data["commands"] = commands
        data.pop("pull_command", None)
        return data


class EnvironmentExportsHandler(ExportAccess, APIHandler):
    @web.authenticated
    async def post(self, name):
        self.json_body(set())
        env = self.built_environment(name)
        self.require_build()
        job = self.exports.start(env)
        self.write_json(self.export_json(job), status=200 if job["status"] == "done" else 202)

    @web.authenticated
    async def get(self, name):
        env = self.catalog.get(self.viewer, name)
        jobs = self.exports.for_environment(env.name)
        self.write_json({"exports": [self.export_json(j) for j in jobs]})


class ExportHandler(ExportAccess, APIHandler):
    @web.authenticated
    async def get(self, export_id):
        self.write_json(self.export_json(self.visible_export(export_id)))


class ExportDownloadHandler(ExportAccess, APIHandler):
    @web.authenticated
    async def get(self, export_id):
        job = self.visible_export(export_id)
        if job["status"] != "done":
            raise InputError("id", f"the export is {job['status']}, not ready yet", status=409)
        path = self.exports.sif_path(export_id)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{job["filename"]}"')
        self.set_header("Content-Length", str(os.path.getsize(path)))
        self.set_header("ETag", f'"{job["sha256"]}"')
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                self.write(chunk)
                try:
                    await self.flush()
                except Exception:  # the client went away
                    return
        self.finish()


class ExportPage(ExportAccess, PageHandler):
    @web.authenticated
    async def get(self, name):
        self.render_page("export.html", environment=self.built_environment(name))


def routes() -> list:
    return [
        (r"api/environments/([a-z0-9._-]+)/exports", EnvironmentExportsHandler),
        (r"api/exports/([0-9a-f]{64})", ExportHandler),
        (r"api/exports/([0-9a-f]{64})/download", ExportDownloadHandler),
        (r"environments/([a-z0-9._-]+)/export", ExportPage),
    ]
