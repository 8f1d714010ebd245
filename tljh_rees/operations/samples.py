"""Samples for the admin's dashboard: what the service measures of itself over time.

Every ``Sampler.interval`` seconds the service records the build queue's length and the
use (percent) of the engine's data disk, read by the garbage collector's own function
(``operations/gc.py``). Launches are recorded as they are answered: how long the
service's ``POST api/applications`` (or ``applications/<template>``) took, labelled with
the environment or template. The Hub does not tell the service when a server became
ready, so that is the time the service measured, not a server's start-up time.
Samples older than ``keep_days`` are removed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..catalog import Catalog
from ..store.models import Sample, utcnow
from .gc import DiskUsage, percent

log = logging.getLogger("tljh_rees.samples")


@dataclass(frozen=True)
class Point:
    at: datetime  # UTC, aware
    value: float
    label: str = ""


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class Sampler(LoggingConfigurable):
    interval = Integer(60, config=True,
                       help="Seconds between samples of the build queue and the disk use "
                            "(the admin's dashboard).")
    keep_days = Integer(8, config=True, help="Samples older than this many days are removed.")

    def __init__(self, catalog: Catalog, queue_length=None, disk_usage: DiskUsage | None = None,
                 **kwargs):
        """``queue_length()``: builds waiting now; ``disk_usage()``: (used, total) bytes of
        the engine's data disk (``gc.docker_disk_usage``)."""
        super().__init__(**kwargs)
        self.catalog = catalog
        self.queue_length = queue_length
        self.disk_usage = disk_usage

    def record(self, kind: str, value: float, label: str = "",
               at: datetime | None = None) -> None:
        if kind not in Sample.KINDS:
            raise ValueError(f"unknown sample kind {kind!r}")
        with self.catalog.transaction() as db:
            db.add(Sample(kind=kind, value=float(value), label=label[:200],
                          at=(at or utcnow()).astimezone(timezone.utc).replace(tzinfo=None)))

    def launch(self, seconds: float, label: str) -> None:
        """A launch the service answered in ``seconds`` (never fails the launch)."""
        try:
            self.record("launch", seconds, label)
        except Exception:
            log.exception("cannot record a launch sample")

    def sample(self) -> None:
        """One round: the queue's length and the disk's use, whichever can be read."""
        if self.queue_length is not None:
            self.record("queue", self.queue_length())
        if self.disk_usage is not None:
            try:
                usage = self.disk_usage()
            except Exception as e:  # the engine may be down: the queue is still recorded
                log.warning("cannot read the engine's disk use: %s", e)
            else:
                self.record("disk", percent(usage))

    def prune(self, now: datetime | None = None) -> int:
        cutoff = (now or utcnow()) - timedelta(days=self.keep_days)
        with self.catalog.transaction() as db:
            result = db.execute(delete(Sample).where(
                Sample.at < cutoff.astimezone(timezone.utc).replace(tzinfo=None)))
        return result.rowcount or 0

    def series(self, kind: str, since: datetime) -> list[Point]:
        with self.catalog.session() as db:
            rows = db.scalars(select(Sample).where(
                Sample.kind == kind,
                Sample.at >= since.astimezone(timezone.utc).replace(tzinfo=None))
                .order_by(Sample.at, Sample.id)).all()
            return [Point(aware(r.at), r.value, r.label) for r in rows]

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sample)
                await asyncio.to_thread(self.prune)
            except Exception:
                self.log.exception("samples: a round failed")
            await asyncio.sleep(self.interval)
