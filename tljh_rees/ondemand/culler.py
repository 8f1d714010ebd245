"""Culling by a template's own limits: a server of a template is stopped once it has
been idle for the template's ``cull-timeout`` or has lived its ``max-age``. Idle is
measured as JupyterHub measures it (the server's ``last_activity``, which the proxy and
the server itself report). A temporary user goes with its server, however the server
stopped (here, by TLJH's own idle culler, or by its user).

Unclaimed pooled servers are the pool's, not anybody's: they are never culled here.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from ..catalog.templates import TemplateCatalog
from ..errors import ReesError
from ..hubapi import HubAPI
from ..store.models import Template, utcnow
from .temporary import TemporaryUsers

log = logging.getLogger("tljh_rees.ondemand")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)  # SQLite gives back naive UTC
    return moment


def overdue(template: Template, last_activity: datetime | None, started: datetime | None,
            now: datetime) -> str | None:
    """Why a server of ``template`` should stop now (None: it may go on)."""
    if template.cull_timeout and last_activity and \
            now - last_activity > timedelta(seconds=template.cull_timeout):
        return f"idle for more than {template.cull_timeout} s"
    if template.max_age and started and now - started > timedelta(seconds=template.max_age):
        return f"older than {template.max_age} s"
    return None


class Culler(LoggingConfigurable):
    interval = Float(30.0, config=True, help="Seconds between looks at template servers.")
    launch_grace = Integer(
        300, config=True,
        help="Seconds a new temporary user may go without a server (while the Hub makes "
             "it) before it is removed.")

    def __init__(self, templates: TemplateCatalog, temporary: TemporaryUsers, hub: HubAPI,
                 **kwargs):
        super().__init__(**kwargs)
        self.templates = templates
        self.temporary = temporary
        self.hub = hub

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.cull()
            except ReesError as e:
                log.warning("culler: %s", e)
            except Exception:
                log.exception("culler: a round failed")

    async def cull(self) -> list[str]:
        """One round; returns ``user/server`` of each server stopped."""
        now = utcnow()
        templates = {t.name: t for t in self._templates()}
        temporary = {row.name: row for row in self.temporary.live()}
        stopped, running = [], set()
        for user in await self.hub.active_users():
            for server_name, server in (user.get("servers") or {}).items():
                options = server.get("user_options") or {}
                name = options.get("template")
                row = temporary.get(user["name"])
                if row is not None:
                    running.add(row.name)
                if not name or (row is not None and row.state != "claimed"):
                    continue
                template = templates.get(name)
                last = parse_time(server.get("last_activity"))
                started = parse_time(server.get("started"))
                if row is not None and row.claimed:  # a pooled server's life starts here
                    claimed = aware(row.claimed)
                    started = claimed
                    last = max(last, claimed) if last else claimed
                why = "its template was deleted" if template is None else \
                    overdue(template, last, started, now)
                if why is None or server.get("pending"):
                    continue
                stopped.append(f"{user['name']}/{server_name}")
                if row is not None:
                    await self.temporary.remove(row.name, why)
                else:
                    log.info("culler: stopping %s/%s of template %s: %s", user["name"],
                             server_name, name, why)
                    await self.hub.stop_server(user["name"], server_name)
        grace = timedelta(seconds=self.launch_grace)
        for row in temporary.values():  # users whose servers stopped some other way
            if row.name not in running and row.state == "claimed" and \
                    now - aware(row.created) > grace:
                await self.temporary.remove(row.name, "its server stopped")
        return stopped

    def _templates(self) -> list[Template]:
        with self.templates.catalog.session() as db:
            return list(db.scalars(select(Template)).all())
