"""A build's full log as plain text, for the "Download" button of the log panel."""

from __future__ import annotations

from tornado import web

from .base import APIHandler
from .builds import BuildHandler


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
    """``api/builds/{id}/log``: everything logged so far (a running build's too)."""

    @web.authenticated
    def get(self, build_id):
        build = BuildHandler._build(self, build_id)  # 404 unless the caller may see it
        events = self.rees.logs.read(build_id)
        active = self.rees.builds.active.get(build_id)
        if active is not None and not active.events.finished:
            events += active.events.log.tail_events()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition",
                        f'attachment; filename="{build.environment}-{build_id}.log"')
        self.finish(log_text(events))


def routes() -> list:
    return [(r"api/builds/([0-9a-f]+)/log", BuildLogHandler)]
