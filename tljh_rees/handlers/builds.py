"""JSON API: builds and environments."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select
from tornado import web

from ..builds.events import stream
from ..builds.request import parse_request
from ..engine.catalog import image_labels, list_environments, relabel
from ..store.models import Build, Environment, iso
from .base import APIHandler, InputError

BUILD_FIELDS = {"repo", "ref", "name", "profile", "credentials", "display_name",
                "description", "public"}
KEEPALIVE_SECONDS = 15


class BuildsHandler(APIHandler):
    @web.authenticated
    async def post(self):
        self.require_build()
        data = self.json_body(BUILD_FIELDS, required={"repo"})
        request = parse_request(data, owner=self.user_name, profiles=self.rees.profiles,
                                allow_local=self.rees.builds.allow_local_repos,
                                default_profile=self.rees.default_profile)
        build = await self.rees.builds.submit(request, is_admin=self.is_admin)
        self.write_json(build, status=200 if build["status"] == "built" else 202)

    @web.authenticated
    def get(self):
        environment = self.get_argument("environment", None)
        with self.rees.db() as db:
            query = select(Build).order_by(Build.created.desc()).limit(200)
            if environment:
                query = query.where(Build.environment == environment)
            builds = db.scalars(query).all()
            visible = self.rees.visible_environment_names(db, self.user_name, self.is_admin)
        self.write_json({"builds": [self.rees.builds.build_json(b) for b in builds
                                    if b.environment in visible]})


class BuildHandler(APIHandler):
    def _build(self, build_id: str) -> Build:
        with self.rees.db() as db:
            build = db.get(Build, build_id)
            visible = build is not None and build.environment in \
                self.rees.visible_environment_names(db, self.user_name, self.is_admin)
        if not visible:
            raise InputError("id", f"no build {build_id}", status=404)
        return build

    @web.authenticated
    def get(self, build_id):
        self.write_json(self.rees.builds.build_json(self._build(build_id)))

    @web.authenticated
    async def delete(self, build_id):
        build = self._build(build_id)
        if not self.may_manage(build.owner):
            raise web.HTTPError(403, "Only the build's owner or an admin can cancel it.")
        self.write_json(await self.rees.builds.cancel(build_id))


class BuildEventsHandler(APIHandler):
    """Server-sent events: replay from the start (or Last-Event-ID), then live."""

    def set_default_headers(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    @web.authenticated
    async def get(self, build_id):
        BuildHandler._build(self, build_id)
        after = self.request.headers.get("Last-Event-ID") or self.get_argument("after", "0")
        try:
            after = int(after)
        except ValueError:
            raise InputError("Last-Event-ID", "expected an event number") from None
        active = self.rees.builds.active.get(build_id)
        live = active.events if active else None
        batches = stream(self.rees.logs, build_id, live, after).__aiter__()
        while True:
            try:
                batch = await asyncio.wait_for(batches.__anext__(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                self.write(": keepalive\n\n")
            except StopAsyncIteration:
                break
            else:
                for event in batch:
                    if event.get("id") is not None:
                        self.write(f"id: {event['id']}\n")
                    self.write(f"event: {event.get('type', 'log')}\n"
                               f"data: {json.dumps(event)}\n\n")
            try:
                await self.flush()  # once per batch: a whole replay goes out in one write
            except Exception:  # the client went away
                return
        self.finish()


def environment_json(rees, env: Environment, image_info, last_build: Build | None) -> dict:
    profile = rees.profile(env.profile) or {}
    status = "missing"
    if last_build is not None and last_build.status in ("queued", "running"):
        status = last_build.status
    elif env.image and image_info is not None:
        status = "built"
    elif last_build is not None and last_build.status in ("failed", "cancelled"):
        status = last_build.status
    return {
        "name": env.name, "display_name": env.display_name or env.name,
        "description": env.description, "repo": env.repo, "ref": env.ref,
        "commit": env.commit, "image": env.image if image_info else None,
        "image_size": image_info.size if image_info else None,
        "owner": env.owner, "profile": env.profile or None,
        "limits": {"cpu": profile.get("cpu"), "memory": profile.get("memory")},
        "public": env.public, "status": status,
        "spec_name": env.spec_name, "spec_version": env.spec_version,
        "created": iso(env.created), "updated": iso(env.updated),
        "last_build": rees.builds.build_json(last_build) if last_build else None,
        "url": rees.url("api/environments", env.name),
    }


class EnvironmentsHandler(APIHandler):
    @web.authenticated
    async def get(self):
        images = await asyncio.to_thread(list_environments, self.rees.docker_api())
        with self.rees.db() as db:
            envs = self.rees.visible_environments(db, self.user_name, self.is_admin)
            result = [environment_json(self.rees, env, images.get(env.name),
                                       self.rees.last_build(db, env.name)) for env in envs]
        self.write_json({"environments": result})


class EnvironmentHandler(APIHandler):
    def _env(self, db, name) -> Environment:
        env = db.get(Environment, name)
        if env is None or not (env.public or self.is_admin or env.owner == self.user_name):
            raise InputError("name", f"no environment {name}", status=404)
        return env

    @web.authenticated
    async def get(self, name):
        images = await asyncio.to_thread(list_environments, self.rees.docker_api())
        with self.rees.db() as db:
            env = self._env(db, name)
            self.write_json(environment_json(self.rees, env, images.get(name),
                                             self.rees.last_build(db, name)))

    @web.authenticated
    async def patch(self, name):
        data = self.json_body({"display_name", "description", "profile", "public"})
        with self.rees.db() as db:
            env = self._env(db, name)
            if not self.may_manage(env.owner):
                raise web.HTTPError(403, "Only the environment's owner or an admin can change it.")
            if "profile" in data and data["profile"] and not self.rees.profile(data["profile"]):
                raise InputError("profile", f"unknown profile {data['profile']!r}")
            if "public" in data and not isinstance(data["public"], bool):
                raise InputError("public", "expected true or false")
            for key in ("display_name", "description"):
                if key in data and not isinstance(data[key], str):
                    raise InputError(key, "expected text")
            for key, value in data.items():
                setattr(env, key, value)
            image = env.image
            db.commit()
        if image:
            labels = image_labels(**{k: (str(v).lower() if isinstance(v, bool) else v)
                                     for k, v in data.items()})
            await asyncio.to_thread(relabel, self.rees.docker_api(), image, labels)
        await self.get(name)

    @web.authenticated
    async def delete(self, name):
        force = self.get_argument("force", "false").lower() == "true"
        with self.rees.db() as db:
            env = self._env(db, name)
            if not self.may_manage(env.owner):
                raise web.HTTPError(403, "Only the environment's owner or an admin can delete it.")
        running = await asyncio.to_thread(self.rees.servers_using, name)
        if running and not force:
            raise InputError("name", f"{len(running)} server(s) run from {name} "
                                     f"({', '.join(running)}); stop them or delete with "
                                     "?force=true", status=409)
        for build_id, active in list(self.rees.builds.active.items()):
            if active.request.name == name:
                await self.rees.builds.cancel(build_id)
        await asyncio.to_thread(self.rees.remove_environment, name)
        self.set_status(204)
        self.finish()


def routes() -> list:
    return [
        ("api/builds", BuildsHandler),
        (r"api/builds/([0-9a-f]+)", BuildHandler),
        (r"api/builds/([0-9a-f]+)/events", BuildEventsHandler),
        ("api/environments", EnvironmentsHandler),
        (r"api/environments/([a-z0-9._-]+)", EnvironmentHandler),
    ]
