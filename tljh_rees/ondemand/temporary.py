"""Temporary users: the Hub users anonymous servers run as.

Each gets a random, unguessable name and a row in the service's database, written before
the Hub user exists: the spawner reads it to know the user is temporary (no personal
storage, only the one template). Removing one deletes the Hub user (the Hub stops its
server first) and marks the row ``gone``; ``gone`` rows are purged after a day.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select

from .. import SERVICE_NAME
from ..catalog.templates import TemplateCatalog
from ..errors import ReesError
from ..hubapi import HubAPI
from ..store.models import Template, TemporaryUser, utcnow

PREFIX = "anon-"
KEEP_GONE = timedelta(days=1)
log = logging.getLogger("tljh_rees.ondemand")


def new_name() -> str:
    """64 random bits: a name nobody can guess, so nobody can log in as it first."""
    return PREFIX + secrets.token_hex(8)


class TemporaryUsers:
    def __init__(self, templates: TemplateCatalog, hub: HubAPI):
        self.templates = templates
        self.catalog = templates.catalog
        self.hub = hub

    # -- rows -----------------------------------------------------------------------------

    def live(self, template_id: int | None = None, states=TemporaryUser.LIVE,
             pooled: bool | None = None) -> list[TemporaryUser]:
        query = select(TemporaryUser).where(TemporaryUser.state.in_(states))
        if template_id is not None:
            query = query.where(TemporaryUser.template_id == template_id)
        if pooled is not None:
            query = query.where(TemporaryUser.pooled.is_(pooled))
        with self.catalog.session() as db:
            return list(db.scalars(query.order_by(TemporaryUser.created)).all())

    def get(self, name: str) -> TemporaryUser | None:
        return self.templates.temporary_user(name)

    def count_claimed(self, template_id: int | None = None) -> int:
        query = select(func.count()).select_from(TemporaryUser).where(
            TemporaryUser.state == "claimed")
        if template_id is not None:
            query = query.where(TemporaryUser.template_id == template_id)
        with self.catalog.session() as db:
            return db.scalar(query)

    def claimed_since(self, template_id: int, since) -> int:
        with self.catalog.session() as db:
            return db.scalar(select(func.count()).select_from(TemporaryUser).where(
                TemporaryUser.template_id == template_id, TemporaryUser.pooled.is_(True),
                TemporaryUser.claimed.is_not(None), TemporaryUser.claimed >= since))

    def add(self, template: Template, pooled: bool) -> TemporaryUser:
        """A new row: ``warming`` for a pool, ``claimed`` for a launch of its own."""
        now = utcnow()
        row = TemporaryUser(name=new_name(), template_id=template.id, template=template.name,
                            pooled=pooled, state="warming" if pooled else "claimed",
                            created=now, claimed=None if pooled else now)
        with self.catalog.transaction() as db:
            db.add(row)
        return row

    def set_state(self, name: str, state: str, only_if: str | None = None) -> bool:
        """Move a row to ``state`` (if it is in ``only_if``); whether it moved."""
        with self.catalog.transaction() as db:
            row = db.get(TemporaryUser, name)
            if row is None or (only_if is not None and row.state != only_if):
                return False
            row.state = state
            if state == "claimed":
                row.claimed = utcnow()
            if state == "gone":
                row.ended = utcnow()
        return True

    def claim_available(self, template_id: int) -> TemporaryUser | None:
        """Take the oldest available pooled server of the template (one transaction, so
        two launches never get the same one)."""
        with self.catalog.transaction() as db:
            row = db.scalars(select(TemporaryUser).where(
                TemporaryUser.template_id == template_id, TemporaryUser.pooled.is_(True),
                TemporaryUser.state == "available").order_by(TemporaryUser.created)
                .limit(1)).first()
            if row is None:
                return None
            row.state, row.claimed = "claimed", utcnow()
        return row

    def purge(self) -> None:
        with self.catalog.transaction() as db:
            db.execute(delete(TemporaryUser).where(TemporaryUser.state == "gone",
                                                   TemporaryUser.ended < utcnow() - KEEP_GONE))

    # -- the Hub --------------------------------------------------------------------------

    async def start(self, row: TemporaryUser) -> None:
        """Make the Hub user and ask for its server (the Hub answers once it started, or
        once it is slow; the caller watches the user for the outcome)."""
        await self.hub.create_user(row.name)
        await self.hub.start_server(row.name, "", {"template": row.template})

    async def token(self, row: TemporaryUser) -> str:
        """A token of the temporary user that may use its server, see how it starts, and
        call this service (to look at or stop its application), for a day."""
        return await self.hub.server_token(
            row.name, "", note=f"anonymous server of template {row.template}",
            scopes=(f"read:servers!user={row.name}", f"access:services!service={SERVICE_NAME}"))

    async def remove(self, name: str, reason: str) -> None:
        """Stop the user's server (interrupting a start), wait until the Hub has stopped
        it, then delete the user and mark the row gone. On a Hub error the row stays live,
        and the culler's next round tries again."""
        log.info("removing temporary user %s: %s", name, reason)
        try:
            await self._stop(name)
            await self.hub.delete_user(name)
        except ReesError as e:
            log.warning("could not remove temporary user %s (will retry): %s", name, e)
            return
        self.set_state(name, "gone")

    async def _stop(self, name: str, timeout: float = 60) -> None:
        """The Hub deletes a user whose server is still starting without stopping it (its
        container would be left): stop the server first, and wait for the stop."""
        try:
            await self.hub.stop_server(name, "")
        except ReesError as e:
            if e.status == 404:
                return  # no such user any more
            if e.status != 400:  # 400: not running, or already stopping
                raise
        for _ in range(int(timeout / 0.25)):
            try:
                servers = (await self.hub.user(name)).get("servers") or {}
            except ReesError as e:
                if e.status == 404:
                    return
                raise
            if not servers.get(""):
                return
            await asyncio.sleep(0.25)
        raise ReesError(f"the Hub did not stop {name}'s server in {timeout:g} s", status=502)
