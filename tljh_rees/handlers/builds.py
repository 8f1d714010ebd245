"""JSON API: builds, their live events and their logs."""

from __future__ import annotations

import asyncio
import json

from tornado import web
from tornado.iostream import StreamClosedError

from ..builds.events import stream
from ..builds.request import parse_request
from ..store.models import Build, iso
from .base import APIHandler, InputError

BUILD_FIELDS = {"repo", "ref", "name", "profile", "credentials", "display_name",
                "description", "public"}


def build_json(build: Build, builds, urls) -> dict:
    url = urls("api/builds", build.id)
    return {
        "id": build.id, "environment": build.environment, "repo": build.repo,
        "ref": build.ref, "commit": build.commit, "image": build.image,
        "status": build.status, "queue_position": builds.queue_position(build.id),
        "cache_hit": build.cache_hit, "owner": build.owner, "profile": build.profile,
        "error": build.error or None, "created": iso(build.created),
        "started": iso(build.started), "finished": iso(build.finished),
        "spec_version": build.spec_version,
        "url": url, "events_url": url + "/events",
    }


class BuildAPIHandler(APIHandler):
    def build_json(self, build: Build) -> dict:
        return build_json(build, self.builds, self.urls)

    def write_build(self, build: Build) -> None:
        """200 when it is built already (cache), 202 when it is queued or running."""
        self.write_json(self.build_json(build), status=200 if build.status == "built" else 202)


class BuildsHandler(BuildAPIHandler):
    @web.authenticated
    async def post(self):
        self.require_build()
        data = self.json_body(BUILD_FIELDS, required={"repo"})
        request = parse_request(data, self.viewer, self.catalog.profiles,
                                allow_local=self.builds.allow_local_repos)
        self.write_build(await self.builds.submit(request))

    @web.authenticated
    def get(self):
        builds = self.catalog.builds(self.viewer, self.get_argument("environment", ""),
                                     limit=self.int_argument("limit", 200))
        self.write_json({"builds": [self.build_json(b) for b in builds]})


class BuildHandler(BuildAPIHandler):
    @web.authenticated
    def get(self, build_id):
        self.write_json(self.build_json(self.catalog.build(self.viewer, build_id)))

    @web.authenticated
    async def delete(self, build_id):
        self.write_json(self.build_json(await self.builds.cancel(self.viewer, build_id)))


class BuildEventsHandler(APIHandler):
    """Server-sent events: replay from the start (or Last-Event-ID), then live, with a
    comment every ``ReesService.event_keepalive`` seconds while the build is quiet."""

    def set_default_headers(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    @web.authenticated
    async def get(self, build_id):
        self.catalog.build(self.viewer, build_id)  # 404 unless the caller may see it
        after = self.request.headers.get("Last-Event-ID") or self.get_argument("after", "0")
        try:
            after = int(after)
        except ValueError:
            raise InputError("Last-Event-ID", "expected an event number") from None
        batches = stream(self.settings["logs"], build_id, self.builds.live_events(build_id),
                         after).__aiter__()
        try:
            while True:
                # Wait for the next batch without cancelling it at each keepalive:
                # cancelling would end the stream before its final phase.
                next_batch = asyncio.ensure_future(batches.__anext__())
                while not next_batch.done():
                    await asyncio.wait([next_batch], timeout=self.settings["event_keepalive"])
                    if not next_batch.done():
                        self.write(": keepalive\n\n")
                        await self.flush()
                try:
                    batch = next_batch.result()
                except StopAsyncIteration:
                    break
                for event in batch:
                    if event.get("id") is not None:
                        self.write(f"id: {event['id']}\n")
                    self.write(f"event: {event.get('type', 'log')}\n"
                               f"data: {json.dumps(event)}\n\n")
                await self.flush()  # once per batch: a whole replay goes out in one write
        except StreamClosedError:  # the client went away
            return
        finally:
            await batches.aclose()
        self.finish()


def log_text(events: list[dict]) -> str:
    """Log lines as they were printed; phase changes as lines of their own."""
    lines = []
    for event in events:
        message = event.get("message") or ""
        if event.get("type") == "phase":
            message = f"[{event.get('phase')}] {message}".rstrip() + "\n"
        elif not message.endswith("\n"):
            message += "\n"
        lines.append(message)
    return "".join(lines)


class BuildLogHandler(APIHandler):
    """``api/builds/{id}/log``: everything logged so far (a running build's too), as the
    "Download" button of the log panel gets it."""

    @web.authenticated
    def get(self, build_id):
        build = self.catalog.build(self.viewer, build_id)
        events = self.settings["logs"].read(build_id)
        live = self.builds.live_events(build_id)
        if live is not None and not live.finished:
            events += live.log.tail_events()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition",
                        f'attachment; filename="{build.environment}-{build_id}.log"')
        self.finish(log_text(events))


def routes() -> list:
    return [
        ("api/builds", BuildsHandler),
        (r"api/builds/([0-9a-f]+)", BuildHandler),
        (r"api/builds/([0-9a-f]+)/events", BuildEventsHandler),
        (r"api/builds/([0-9a-f]+)/log", BuildLogHandler),
    ]
