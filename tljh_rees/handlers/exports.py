"""Export for HPC: start an environment's SIF export, follow it, download the file.

Anyone who can see an environment may export it (like launching it); the SIF is made
once per image and shared. Environments are read from the images (the catalog).
"""

from __future__ import annotations

import asyncio
import os

from tornado import web

from ..engine.catalog import EnvironmentImage, list_environments
from ..export.jobs import ExportManager
from .base import APIHandler, InputError
from .pages import PageHandler

CHUNK = 1024 * 1024


class ExportAccess:
    """Finding environments and exports the current user may see."""

    @property
    def exports(self) -> ExportManager:
        return ExportManager.of(self.rees)

    async def visible_environment(self, name: str) -> EnvironmentImage:
        envs = await asyncio.to_thread(list_environments, self.rees.docker_api())
        env = envs.get(name)
        if env is None or not env.visible_to(self.user_name, self.is_admin):
            raise InputError("name", f"no built environment {name}", status=404)
        return env

    async def visible_export(self, export_id: str) -> dict:
        job = self.exports.get(export_id)
        if job is not None:
            envs = await asyncio.to_thread(list_environments, self.rees.docker_api())
            env = envs.get(job["environment"])
            if self.is_admin or (env is not None and env.visible_to(self.user_name, False)):
                return job
        raise InputError("id", f"no export {export_id}", status=404)

    def export_json(self, job: dict) -> dict:
        base = f"{self.request.protocol}://{self.request.host}"
        download = self.rees.url("api/exports", job["id"], "download")
        data = dict(job)
        data["url"] = self.rees.url("api/exports", job["id"])
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
        env = await self.visible_environment(name)
        job = self.exports.start(env)
        self.write_json(self.export_json(job), status=200 if job["status"] == "done" else 202)

    @web.authenticated
    async def get(self, name):
        env = await self.visible_environment(name)
        jobs = self.exports.for_environment(env.name)
        self.write_json({"exports": [self.export_json(j) for j in jobs]})


class ExportHandler(ExportAccess, APIHandler):
    @web.authenticated
    async def get(self, export_id):
        self.write_json(self.export_json(await self.visible_export(export_id)))


class ExportDownloadHandler(ExportAccess, APIHandler):
    @web.authenticated
    async def get(self, export_id):
        job = await self.visible_export(export_id)
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
        env = await self.visible_environment(name)
        self.render_page("export.html", environment=env)


def routes() -> list:
    return [
        (r"api/environments/([a-z0-9._-]+)/exports", EnvironmentExportsHandler),
        (r"api/exports/([0-9a-f]{64})", ExportHandler),
        (r"api/exports/([0-9a-f]{64})/download", ExportDownloadHandler),
        (r"environments/([a-z0-9._-]+)/export", ExportPage),
    ]
