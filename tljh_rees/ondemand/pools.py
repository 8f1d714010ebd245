"""Warm pools: servers of a template started ahead for temporary users, so that an
anonymous launch only has to claim one.

The database holds each pool's size and each pooled server's state (``warming`` →
``available`` → ``claimed``), so a restarted service adopts what still runs and replaces
what does not. Pools are sized against the machine: the CPUs and memory of every pool's
servers together never exceed what the host has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from sqlalchemy import select
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from ..catalog import Viewer
from ..catalog.templates import Machine, TemplateCatalog
from ..errors import Conflict, Forbidden, InputError, ReesError
from ..hubapi import HubAPI
from ..settings import readable_size
from ..store.models import Pool, Template, TemporaryUser, iso, utcnow
from .temporary import TemporaryUsers

MAX_POOL = 1000
BACKOFF_MAX = 300  # seconds between tries of a pool whose servers fail to start

log = logging.getLogger("tljh_rees.ondemand")


class PoolManager(LoggingConfigurable):
    interval = Float(2.0, config=True,
                     help="Seconds between looks at the pools (a claim or a change looks "
                          "at once).")
    parallel_starts = Integer(2, config=True,
                              help="Pooled servers started at the same time, over all "
                                   "pools (each start is mostly CPU: Python imports).")
    start_timeout = Integer(300, config=True,
                            help="Seconds a pooled server may take to become ready.")
    touch_interval = Integer(
        60, config=True,
        help="Seconds between activity notes for unclaimed pooled servers, so TLJH's idle "
             "culler does not stop servers that are waiting to be claimed.")

    def __init__(self, templates: TemplateCatalog, temporary: TemporaryUsers, hub: HubAPI,
                 machine: Machine, **kwargs):
        super().__init__(**kwargs)
        self.templates = templates
        self.temporary = temporary
        self.hub = hub
        self.machine = machine
        self.starting: dict[str, asyncio.Task] = {}  # temporary user -> its start
        self.failures: dict[int, tuple[int, float, str]] = {}  # template -> n, until, why
        self._wake = asyncio.Event()
        self._touched = 0.0

    @property
    def catalog(self):
        return self.templates.catalog

    # -- the API's view -------------------------------------------------------------------

    def pools(self) -> list[tuple[Template, Pool]]:
        with self.catalog.session() as db:
            return list(db.execute(select(Template, Pool).join(Pool, Pool.template_id ==
                                                                Template.id)
                                   .order_by(Template.name)).all())

    def describe(self, template: Template, size: int) -> dict:
        rows = self.temporary.live(template.id, pooled=True)
        available = sum(r.state == "available" for r in rows)
        body = {
            "template": template.name, "size": size,
            "running": sum(r.state in ("available", "claimed") for r in rows),
            "available": available,
            "starting": sum(r.state == "warming" for r in rows),
            "claimed": sum(r.state == "claimed" for r in rows),
            "claimed-last-hour": self.temporary.claimed_since(
                template.id, utcnow() - timedelta(hours=1)),
        }
        failure = self.failures.get(template.id)
        if failure:
            body["error"] = failure[2]
        return body

    def all(self, viewer: Viewer) -> list[dict]:
        self.require_admin(viewer)
        return [self.describe(t, p.size) for t, p in self.pools()]

    def one(self, viewer: Viewer, name: str) -> dict:
        self.require_admin(viewer)
        template = self.templates.get(viewer, name)
        with self.catalog.session() as db:
            pool = db.get(Pool, template.id)
        if pool is None:
            raise ReesError(f"template {name!r} has no pool", field="template", status=404)
        return self.describe(template, pool.size)

    @staticmethod
    def require_admin(viewer: Viewer) -> None:
        if not viewer.admin:
            raise Forbidden("pools take the machine's resources: only admins (Hub admins "
                            "and custom:rees:admin) may see or change them")

    # -- changing -------------------------------------------------------------------------

    def resize(self, viewer: Viewer, name: str, size) -> dict:
        """Create the template's pool or change its size; refills start at once."""
        self.require_admin(viewer)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_POOL:
            raise InputError("size", f"expected a whole number from 0 to {MAX_POOL}")
        template = self.templates.get(viewer, name)
        if not template.anonymous:
            raise Conflict(f"template {name!r} is not anonymous: pooled servers are for "
                           "temporary users (a user's own storage cannot be mounted into a "
                           "running server); PATCH it with \"anonymous\": true first",
                           field="template")
        self._check_capacity(template, size)
        with self.catalog.transaction() as db:
            pool = db.get(Pool, template.id)
            if pool is None:
                db.add(Pool(template_id=template.id, size=size))
            else:
                pool.size = size
        self.failures.pop(template.id, None)
        self.wake()
        return self.describe(template, size)

    def _check_capacity(self, template: Template, size: int) -> None:
        """The CPUs and memory of all pools' servers, with this one at ``size``, within
        the machine (or the swarm's ready nodes together)."""
        if size and (not template.cpu or not template.memory):
            raise Conflict(f"template {template.name!r} has no CPU or memory limit, so its "
                           "servers cannot be counted against the machine; give it limits",
                           field="template")
        cpus, memory = template.cpu * size if size else 0, template.memory * size if size \
            else 0
        for other, pool in self.pools():
            if other.id != template.id:
                cpus += (other.cpu or 0) * pool.size
                memory += (other.memory or 0) * pool.size
        machine = self.machine
        if cpus > machine.total_cpus + 1e-9 or memory > machine.total_memory:
            raise Conflict(
                f"pools would take {cpus:g} CPUs and {readable_size(int(memory))} of memory, "
                f"more than {machine.describe_all} ({machine.total_cpus:g} CPUs, "
                f"{readable_size(machine.total_memory)}); {size} servers of {template.name!r} "
                f"need {template.cpu * size:g} CPUs and "
                f"{readable_size(int(template.memory * size))}", field="size")

    async def remove(self, viewer: Viewer, name: str) -> None:
        """Delete the pool and stop its unclaimed servers (claimed ones are people's)."""
        self.require_admin(viewer)
        template = self.templates.get(viewer, name)
        with self.catalog.transaction() as db:
            pool = db.get(Pool, template.id)
            if pool is None:
                raise ReesError(f"template {name!r} has no pool", field="template",
                                status=404)
            db.delete(pool)
        await self.drain(template.id)

    async def drain(self, template_id: int) -> None:
        """Stop every unclaimed pooled server of a template (its pool or template is gone)."""
        rows = self.temporary.live(template_id, states=("warming", "available"), pooled=True)
        for row in rows:
            task = self.starting.pop(row.name, None)
            if task:
                task.cancel()
        await asyncio.gather(*(self.temporary.remove(r.name, "its pool was removed")
                               for r in rows))

    # -- claiming -------------------------------------------------------------------------

    async def claim(self, template: Template) -> TemporaryUser | None:
        """An available server of the template, now the caller's; None if none is."""
        while True:
            row = self.temporary.claim_available(template.id)
            if row is None:
                return None
            self.wake()  # refill
            try:
                server = ((await self.hub.user(row.name)).get("servers") or {}).get("")
            except ReesError:
                server = None
            if server and server.get("ready"):
                await self.hub.note_activity(row.name, "", iso(utcnow()))
                return row
            await self.temporary.remove(row.name, "it stopped while waiting in the pool")

    # -- keeping pools full ---------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self, anonymous_enabled: bool) -> None:
        """Keep the pools full; with anonymous launches off, stop what pools left."""
        if not anonymous_enabled:
            for row in self.temporary.live(states=("warming", "available"), pooled=True):
                await self.temporary.remove(row.name, "anonymous launches are off")
            return
        await self.adopt()
        while True:
            try:
                await self.step()
            except Exception:  # a bad step must not end the pools for the life of the service
                log.exception("pools: a refill step failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def adopt(self) -> None:
        """After a restart: keep pooled servers that still run, watch those starting,
        remove the rest."""
        for row in self.temporary.live(states=("warming", "available"), pooled=True):
            try:
                server = ((await self.hub.user(row.name)).get("servers") or {}).get("")
            except ReesError as e:
                if e.status != 404:
                    raise
                self.temporary.set_state(row.name, "gone")
                continue
            if server and server.get("ready"):
                self.temporary.set_state(row.name, "available")
            elif server and server.get("pending"):
                self.starting[row.name] = asyncio.create_task(self._warm(row, start=False))
            else:
                await self.temporary.remove(row.name, "its server is not running")
        log.info("pools: adopted %d servers", len(self.temporary.live(
            states=("warming", "available"), pooled=True)))

    async def step(self) -> None:
        pools = self.pools()
        wanted = {t.id for t, _ in pools}
        live: dict[int | None, list[TemporaryUser]] = {}
        for row in self.temporary.live(states=("warming", "available"), pooled=True):
            live.setdefault(row.template_id, []).append(row)
        for template_id in set(live) - wanted:
            await self.drain(template_id)
        for template, pool in pools:
            await self._fill(template, pool.size, live.get(template.id, []))
        await self._touch([r for rows in live.values() for r in rows
                           if r.state == "available"])
        self.temporary.purge()

    async def _fill(self, template: Template, size: int, rows: list[TemporaryUser]) -> None:
        extra = len(rows) - size
        if extra > 0:
            spare = [r for r in reversed(rows) if r.state == "available"][:extra]
            await asyncio.gather(*(self.temporary.remove(r.name, "its pool shrank")
                                   for r in spare))
            return
        failure = self.failures.get(template.id)
        if extra == 0 or (failure and failure[1] > time.monotonic()):
            return
        count = min(-extra, self.parallel_starts - len(self.starting))
        for _ in range(count):
            row = self.temporary.add(template, pooled=True)
            self.starting[row.name] = asyncio.create_task(self._warm(row))
        if count > 0:
            log.info("pools: %s has %d of %d; starting %d more", template.name,
                     sum(r.state == "available" for r in rows), size, count)

    async def _warm(self, row: TemporaryUser, start: bool = True) -> None:
        try:
            if start:
                await self.temporary.start(row)
            deadline = time.monotonic() + self.start_timeout
            while True:
                server = ((await self.hub.user(row.name)).get("servers") or {}).get("")
                if server and server.get("ready"):
                    break
                if not server or not server.get("pending"):
                    raise ReesError("the Hub did not start it (its log says why)")
                if time.monotonic() > deadline:
                    raise ReesError(f"not ready after {self.start_timeout} s")
                await asyncio.sleep(0.25)
            if self.temporary.set_state(row.name, "available", only_if="warming"):
                self.failures.pop(row.template_id, None)
                log.info("pools: %s is ready for %s", row.name, row.template)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            count = self.failures.get(row.template_id, (0, 0, ""))[0] + 1
            pause = min(BACKOFF_MAX, 2 ** count)
            why = f"a pooled server of {row.template} did not start: {e}"
            self.failures[row.template_id] = (count, time.monotonic() + pause, why)
            log.warning("pools: %s; trying again in %d s", why, pause)
            await self.temporary.remove(row.name, "it did not start")
        finally:
            self.starting.pop(row.name, None)
            self.wake()

    async def _touch(self, available: list[TemporaryUser]) -> None:
        if not available or time.monotonic() - self._touched < self.touch_interval:
            return
        self._touched = time.monotonic()
        now = iso(utcnow())
        for row in available:
            try:
                await self.hub.note_activity(row.name, "", now)
            except ReesError as e:
                log.warning("pools: could not note activity of %s: %s", row.name, e)

    async def shutdown(self) -> None:
        """Stop watching starts (the servers keep running; the next start adopts them)."""
        for task in list(self.starting.values()):
            task.cancel()
