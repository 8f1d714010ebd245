"""What the admin's dashboard shows, read from the service's own tables (builds,
environments, samples) and drawn as inline SVG (``charts.py``). Admins only: it names
every environment, private ones included."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

from markupsafe import Markup
from sqlalchemy import select

from ..catalog import Catalog
from ..store.models import Build, Environment, utcnow
from . import charts
from .samples import Sampler, aware

RANGES = {"day": timedelta(days=1), "week": timedelta(days=7)}
TOP_ENVIRONMENTS = 10
FAILED_BUILDS = 10


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _shown(moment: datetime | None) -> str:
    return aware(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


class Dashboard:
    def __init__(self, catalog: Catalog, sampler: Sampler, high: float, low: float):
        self.catalog = catalog
        self.sampler = sampler
        self.high, self.low = high, low

    def context(self, range_name: str = "day", now: datetime | None = None) -> dict:
        end = now or utcnow()
        start = end - RANGES[range_name]
        return {"range": range_name, "ranges": list(RANGES), "start": _shown(start),
                "end": _shown(end), "builds": self.builds(start, end),
                "queue": self.queue(start, end), "disk": self.disk(start, end),
                "launches": self.launches(start, end),
                "top": self.top_environments(start), "failed": self.failed_builds()}

    # -- builds ---------------------------------------------------------------------------

    def builds(self, start: datetime, end: datetime) -> dict:
        with self.catalog.session() as db:
            rows = db.execute(select(Build.id, Build.environment, Build.status,
                                     Build.started, Build.finished)
                              .where(Build.finished >= _naive(start),
                                     Build.started.is_not(None))
                              .order_by(Build.finished)).all()
        items = []
        for build_id, env, status, started, finished in rows:
            seconds = max((aware(finished) - aware(started)).total_seconds(), 0.0)
            items.append({"id": build_id, "environment": env, "status": status,
                          "finished": aware(finished), "seconds": seconds,
                          "duration": charts.duration_text(seconds)})
        durations = [b["seconds"] for b in items]
        median = charts.percentile(durations, 50)
        p95 = charts.percentile(durations, 95)
        label = (f"Build durations, {len(items)} builds finished since {start:%Y-%m-%d %H:%M} "
                 f"UTC; median {charts.duration_text(median)}, 95th percentile "
                 f"{charts.duration_text(p95)}")
        points = [(b["finished"], b["seconds"], b["status"],
                   f"{b['environment']}: {b['status']} in {b['duration']}, finished "
                   f"{b['finished']:%Y-%m-%d %H:%M} UTC") for b in items]
        counts = Counter(b["status"] for b in items)
        return {"items": items, "median": charts.duration_text(median),
                "p95": charts.duration_text(p95), "counts": dict(counts),
                "svg": Markup(charts.duration_chart(points, start, end, label))}

    def failed_builds(self) -> list[dict]:
        with self.catalog.session() as db:
            rows = db.scalars(select(Build).where(Build.status == "failed")
                              .order_by(Build.finished.desc(), Build.created.desc())
                              .limit(FAILED_BUILDS)).all()
            return [{"id": b.id, "environment": b.environment, "owner": b.owner,
                     "finished": _shown(b.finished or b.created),
                     "error": b.error or ""} for b in rows]

    # -- samples --------------------------------------------------------------------------

    def queue(self, start: datetime, end: datetime) -> dict:
        points = self.sampler.series("queue", start)
        values = [p.value for p in points]
        label = (f"Builds waiting in the queue, {len(points)} samples; most "
                 f"{max(values, default=0):g}, now {values[-1]:g}" if values else
                 "Builds waiting in the queue: no samples yet")
        return {"count": len(points), "max": max(values, default=0),
                "now": values[-1] if values else None,
                "svg": Markup(charts.line_chart([(p.at, p.value) for p in points], start,
                                                end, label,
                                                y_max=4 * math.ceil(max(values + [4]) / 4)))}

    def disk(self, start: datetime, end: datetime) -> dict:
        points = self.sampler.series("disk", start)
        values = [p.value for p in points]
        label = (f"Use of the Docker data disk in percent, {len(points)} samples; now "
                 f"{values[-1]:.1f}%, most {max(values):.1f}%; garbage collection removes "
                 f"images above {self.high:g}% down to {self.low:g}%" if values else
                 "Use of the Docker data disk: no samples yet")
        return {"count": len(points), "now": values[-1] if values else None,
                "max": max(values, default=None), "high": self.high, "low": self.low,
                "svg": Markup(charts.line_chart(
                    [(p.at, p.value) for p in points], start, end, label, unit="%",
                    y_max=100.0, lines=[(self.high, "high", f"high {self.high:g}%"),
                                        (self.low, "low", f"low {self.low:g}%")]))}

    def launches(self, start: datetime, end: datetime) -> dict:
        points = self.sampler.series("launch", start)
        values = [p.value for p in points]
        median = charts.percentile(values, 50)
        p95 = charts.percentile(values, 95)
        label = (f"Time the service took to answer {len(points)} launch requests; median "
                 f"{charts.duration_text(median)}, 95th percentile {charts.duration_text(p95)}"
                 if values else "Launch requests: none recorded yet")
        return {"count": len(points), "median": charts.duration_text(median),
                "p95": charts.duration_text(p95),
                "svg": Markup(charts.line_chart([(p.at, p.value) for p in points], start,
                                                end, label, unit=" s"))}

    def top_environments(self, start: datetime) -> dict:
        counts = Counter(p.label for p in self.sampler.series("launch", start) if p.label)
        if counts:
            items = counts.most_common(TOP_ENVIRONMENTS)
            label = "Launches by environment or template: " + ", ".join(
                f"{name} {count}" for name, count in items)
            return {"source": "samples", "items": items,
                    "svg": Markup(charts.bar_list(items, label))}
        with self.catalog.session() as db:  # no launch samples yet: who ran lately
            rows = db.execute(select(Environment.name, Environment.last_launched)
                              .where(Environment.last_launched.is_not(None))
                              .order_by(Environment.last_launched.desc())
                              .limit(TOP_ENVIRONMENTS)).all()
        return {"source": "last_launched", "svg": None,
                "items": [(name, _shown(when)) for name, when in rows]}
