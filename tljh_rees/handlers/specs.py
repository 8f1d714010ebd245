"""The composer: its pages and the specs API under ``{prefix}api/specs``.

Reading specs (list, get, versions, zip, preview of a saved version) is open to every
Hub user; composing, saving, importing, forking and building need the build permission,
and changing or deleting a spec needs to be its owner (or an admin).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tornado import web

from ..builds.request import BuildRequest, check_name, environment_options
from ..builds.sources import GitSource
from ..composer.archive import read_folder, read_zip
from ..composer.errors import SpecError
from ..composer.sections import SECTIONS
from ..composer.service import Composer
from ..errors import Conflict, Forbidden
from ..store.models import Environment
from .base import APIHandler, InputError
from .builds import build_json
from .pages import PageHandler

SPEC_NAME_PATTERN = r"([a-z0-9][a-z0-9._-]*)"
CREATE_FIELDS = {"name", "display_name", "description", "sections", "message",
                 "from_environment", "from_spec", "from_version"}
SAVE_FIELDS = {"display_name", "description", "sections", "message", "base_version"}
BUILD_FIELDS = {"version", "environment", "profile", "display_name", "description", "public"}
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")


class ComposerMixin:
    @property
    def composer(self) -> Composer:
        return self.settings["composer"]

    async def call_in_thread(self, fn, *args, **kwargs):
        """Run a composer operation off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def may_manage(self, owner: str) -> bool:
        return self.viewer.may_manage(owner)

    def spec_links(self, data: dict) -> dict:
        name = data["name"]
        data["links"] = {
            "page": self.urls("composer", name),
            "api": self.urls("api/specs", name),
            "zip": self.urls("api/specs", name, "zip")
                   + (f"?version={data['version']}" if data.get("version") else ""),
        }
        data["may_edit"] = self.may_manage(data.get("owner", ""))
        return data


class SpecsAPIHandler(ComposerMixin, APIHandler):
    max_body = 4 * 1024**2

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SpecError) and getattr(exc, "problems", None) is not None:
            self.finish(json.dumps({
                "error": str(exc), "status": status_code, "field": exc.field,
                "problems": [p.to_dict() for p in exc.problems],
            }))
            return
        super().write_error(status_code, **kwargs)

    def built_environment(self, name) -> Environment:
        """An environment to fork a spec from: one the caller may see, with a build."""
        if not isinstance(name, str):
            raise InputError("from_environment", "expected an environment name")
        env = self.catalog.get(self.viewer, name)
        if not env.commit:
            raise Conflict(f"{name!r} has not been built yet; fork it once a build "
                           "succeeds", field="from_environment")
        return env


class SpecsHandler(SpecsAPIHandler):
    @web.authenticated
    async def get(self):
        specs = await self.call_in_thread(self.composer.list)
        self.write_json({"specs": [self.spec_links(s) for s in specs]})

    @web.authenticated
    async def post(self):
        self.require_build()
        data = self.json_body(CREATE_FIELDS, required={"name"})
        meta = {k: data[k] for k in ("display_name", "description") if k in data}
        sources = [k for k in ("from_environment", "from_spec") if data.get(k)]
        if len(sources) > 1 or (sources and data.get("sections")):
            raise InputError(sources[-1], "start from one of: sections, an environment "
                                          "(from_environment) or a spec (from_spec)")
        if data.get("from_environment"):
            env = self.built_environment(data["from_environment"])
            spec = await self.call_in_thread(
                self.composer.fork, data["name"], self.user_name,
                (env.repo, env.commit, env.ref), f"environment {env.name} "
                f"({env.commit[:12]})", **meta)
        elif data.get("from_spec"):
            store = self.composer.store
            source = data["from_spec"]
            version = await self.call_in_thread(store.resolve, source, data.get("from_version"))
            spec = await self.call_in_thread(
                self.composer.fork, data["name"], self.user_name,
                (store.path(source), version, "main"), f"spec {source} ({version[:12]})", **meta)
        else:
            spec = await self.call_in_thread(self.composer.create, data["name"], self.user_name,
                                             data.get("sections"), data.get("message") or "",
                                             **meta)
        self.set_header("Location", self.urls("api/specs", spec["name"]))
        self.write_json(self.spec_links(spec), status=201)


class ValidateHandler(SpecsAPIHandler):
    @web.authenticated
    async def post(self):
        self.require_build()
        data = self.json_body({"sections", "spec"})
        problems = await self.call_in_thread(self.composer.validate, data.get("sections"),
                                             data.get("spec"))
        self.write_json({"problems": problems,
                         "valid": not any(p["severity"] == "error" for p in problems)})


class PreviewHandler(SpecsAPIHandler):
    @web.authenticated
    async def post(self):
        self.require_build()
        data = self.json_body({"sections", "spec", "version"})
        self.write_json(await self.composer.preview(data.get("sections") or {},
                                        data.get("spec"), data.get("version")))


class ImportHandler(SpecsAPIHandler):
    """A zip (the request body) or a folder (multipart: ``file`` parts, ``path`` fields).
    ``?dry_run=1`` checks and previews the files and saves nothing."""

    @web.authenticated
    async def post(self):
        self.require_build()
        name = self.get_argument("name", "")
        meta = {k: self.get_argument(k) for k in ("display_name", "description")
                if self.get_argument(k, None) is not None}
        limits = self.composer.limits()
        if len(self.request.body) > limits.max_total_bytes + 1024**2:
            raise InputError("file", f"larger than {limits.max_total_bytes} bytes", status=413)
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == "multipart/form-data":
            files = self.request.files.get("file", [])
            paths = self.get_body_arguments("path")
            if paths and len(paths) != len(files):
                raise InputError("path", "send one path per file, in the same order")
            uploads = [(paths[i] if paths else f.filename, f.body) for i, f in enumerate(files)]
            imported = await self.call_in_thread(read_folder, uploads, limits)
        elif content_type in ZIP_TYPES:
            imported = await self.call_in_thread(read_zip, self.request.body, limits)
        else:
            raise InputError("file", "send a zip (Content-Type: application/zip) or a folder "
                                     "(multipart/form-data with 'file' parts)", status=415)
        exists = await self.call_in_thread(self.composer.store.exists, name) if name else False
        if exists:
            info = await self.call_in_thread(self.composer.store.info, name)
            if not self.may_manage(info.owner):
                raise InputError("name", f"the spec {name!r} belongs to {info.owner}; import "
                                         "under another name", status=403)
        if self.get_argument("dry_run", "") in ("1", "true"):
            result = await self.composer.preview_import(imported)
            self.write_json({**result, "name": name or None, "replaces": exists})
            return
        spec = await self.call_in_thread(self.composer.import_files, name, self.user_name,
                                         imported, exists, **meta)
        self.write_json(self.spec_links(spec), status=200 if exists else 201)


class SpecHandler(SpecsAPIHandler):
    @web.authenticated
    async def get(self, name):
        spec = await self.call_in_thread(self.composer.spec, name,
                                         self.get_argument("version", None))
        self.write_json(self.spec_links(spec))

    async def _owned(self, name):
        info = await self.call_in_thread(self.composer.store.info, name)
        if not self.may_manage(info.owner):
            raise Forbidden(f"Only the spec's owner ({info.owner}) or an admin can "
                            "change it; fork it to make your own.")
        return info

    @web.authenticated
    async def put(self, name):
        self.require_build()
        data = self.json_body(SAVE_FIELDS)
        await self._owned(name)
        meta = {k: data[k] for k in ("display_name", "description") if k in data}
        if "sections" in data:
            spec = await self.call_in_thread(self.composer.save, name, self.user_name,
                                             data["sections"], data.get("base_version"),
                                             data.get("message") or "", **meta)
        else:
            spec = await self.call_in_thread(self._update_meta, name, meta)
        self.write_json(self.spec_links(spec))

    def _update_meta(self, name, meta):
        meta = self.composer.check_meta(meta)
        if meta:
            self.composer.store.update_meta(name, **meta)
        return self.composer.spec(name)

    @web.authenticated
    async def delete(self, name):
        self.require_build()
        await self._owned(name)
        await self.call_in_thread(self.composer.store.delete, name)
        self.set_status(204)
        self.finish()


class VersionsHandler(SpecsAPIHandler):
    @web.authenticated
    async def get(self, name):
        versions = await self.call_in_thread(self.composer.store.history, name)
        self.write_json({"versions": versions})


class ZipHandler(SpecsAPIHandler):
    @web.authenticated
    async def get(self, name):
        version, data = await self.call_in_thread(self.composer.store.zip, name,
                                                  self.get_argument("version", None))
        self.set_header("Content-Type", "application/zip")
        filename = f"{name}-{version[:12]}.zip"
        self.set_header("Content-Disposition", f"attachment; filename=\"{filename}\"; "
                                               f"filename*=UTF-8''{quote(filename)}")
        self.finish(data)


class SpecPreviewHandler(SpecsAPIHandler):
    @web.authenticated
    async def get(self, name):
        self.write_json(await self.composer.preview(None, name,
                                        self.get_argument("version", None)))


class SpecBuildsHandler(SpecsAPIHandler):
    """Build a version of a spec with the same builder as git repositories."""

    @web.authenticated
    async def post(self, name):
        self.require_build()
        data = self.json_body(BUILD_FIELDS)
        store = self.composer.store
        info = await self.call_in_thread(store.info, name)
        version = await self.call_in_thread(store.resolve, name, data.get("version"))
        environment = check_name(data.get("environment") or name, name)
        options = environment_options(data, self.catalog.profiles)
        if not self.catalog.exists(environment):  # a new one is named as its spec
            options["display_name"] = options["display_name"] or info.display_name or None
            options["description"] = options["description"] or info.description or None
        request = BuildRequest(
            source=GitSource(store.path(name), allow_local=True), ref=version,
            name=environment, requester=self.viewer, spec_name=name, spec_version=version,
            **options)
        build = await self.builds.submit(request)
        self.write_json(build_json(build, self.builds, self.urls),
                        status=200 if build.status == "built" else 202)


class ComposerPage(ComposerMixin, PageHandler):
    @web.authenticated
    async def get(self, name=None):
        spec = None
        if name:
            try:
                spec = self.spec_links(await self.call_in_thread(
                    self.composer.spec, name, self.get_argument("version", None)))
            except SpecError:
                raise web.HTTPError(404, "%s", f"No spec named {name}.") from None
        specs = [self.spec_links(s) for s in await self.call_in_thread(self.composer.list)]
        environments = []
        if self.viewer.can_build:
            environments = [{"name": e.name, "display_name": e.display_name or e.name}
                            for e in self.catalog.visible(self.viewer) if e.commit]
        profiles = self.profiles_context()
        page = {
            "spec": spec,
            "sections": [{"id": s.id, "file": s.file, "label": s.label, "help": s.help}
                         for s in SECTIONS],
            "profiles": [{"name": p["name"], "label": p["label"]}
                         for p in profiles["profiles"]],
            "default_profile": profiles["default_profile"],
            "can_build": self.viewer.can_build,
        }
        self.render_page("composer.html", active="composer", spec=spec, specs=specs,
                         environments=environments, page_data=page)


def routes() -> list:
    return [
        ("api/specs", SpecsHandler),
        ("api/specs/validate", ValidateHandler),
        ("api/specs/preview", PreviewHandler),
        ("api/specs/import", ImportHandler),
        (rf"api/specs/{SPEC_NAME_PATTERN}", SpecHandler),
        (rf"api/specs/{SPEC_NAME_PATTERN}/versions", VersionsHandler),
        (rf"api/specs/{SPEC_NAME_PATTERN}/zip", ZipHandler),
        (rf"api/specs/{SPEC_NAME_PATTERN}/preview", SpecPreviewHandler),
        (rf"api/specs/{SPEC_NAME_PATTERN}/builds", SpecBuildsHandler),
        ("composer", ComposerPage),
        (rf"composer/{SPEC_NAME_PATTERN}", ComposerPage),
    ]
