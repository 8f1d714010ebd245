"""The service's metrics in Prometheus' text format (``GET metrics``).

:class:`Metrics` owns a registry of its own (never prometheus_client's global one, so
two services in one process, or the tests, don't share counts) with the process
collectors. Collaborators don't import prometheus: they call hooks
(``BuildManager.on_finished``, ``Launcher.on_ready``) that ``app.py`` points at the
methods here. Gauges are read when scraped, from the collaborators given to
:meth:`Metrics.watch`; the servers by environment come from one Hub API call, kept for
``servers_ttl`` seconds (:meth:`Metrics.refresh`, awaited before each scrape).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger("tljh_rees.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# builds: from a small image in seconds to the builds.timeout default of an hour
BUILD_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 2700, 3600, float("inf"))
LAUNCH_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, float("inf"))


class Metrics:
    def __init__(self, servers_ttl: float = 10, clock=time.monotonic):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.builds = Counter(
            "rees_builds", "Builds finished, by outcome (built, failed, cancelled); a "
            "build answered from the cache counts as built.", ["status"],
            registry=self.registry)
        self.build_duration = Histogram(
            "rees_build_duration_seconds", "Seconds a build ran, from leaving the queue to "
            "its outcome (cache answers and time in the queue are not included).",
            buckets=BUILD_BUCKETS, registry=self.registry)
        self.launch_duration = Histogram(
            "rees_launch_duration_seconds", "Seconds from a launch request to the service "
            "seeing the server ready (POST api/applications, launch links, applications of "
            "templates); launches that answer before the server is ready are observed by a "
            "background poll of the Hub about once a second, so values are up to a second "
            "late. pooled=true: an anonymous launch given a warm pooled server.",
            ["pooled"], buckets=LAUNCH_BUCKETS, registry=self.registry)
        self.gc_removed = Counter(
            "rees_gc_removed_images", "Images the garbage collector removed.",
            registry=self.registry)
        self.servers_ttl = servers_ttl
        self.clock = clock
        self._queue_length: Callable[[], int] = lambda: 0
        self._pools: Callable[[], dict[str, int]] = dict
        self._disk: Callable[[], int] = lambda: 0
        self._active_users = None  # async () -> the Hub's users with active servers
        self._servers: dict[str, int] = {}
        self._servers_at: float | None = None
        self.registry.register(_ScrapeTime(self))

    def watch(self, queue_length=None, pools=None, disk=None, active_users=None) -> None:
        """Where gauges come from: callables giving the build queue's length, the
        available pooled servers by template, the bytes of present images, and (async)
        the Hub's active users."""
        self._queue_length = queue_length or self._queue_length
        self._pools = pools or self._pools
        self._disk = disk or self._disk
        self._active_users = active_users or self._active_users

    # -- hooks ----------------------------------------------------------------------------

    def build_finished(self, status: str, seconds: float | None) -> None:
        self.builds.labels(status=status).inc()
        if seconds is not None:
            self.build_duration.observe(seconds)

    def launch_ready(self, seconds: float, pooled: bool = False) -> None:
        self.launch_duration.labels(pooled="true" if pooled else "false").observe(seconds)

    def gc_removed_images(self, count: int = 1) -> None:
        """For the garbage collector: ``count`` images removed."""
        self.gc_removed.inc(count)

    # -- scraping -------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Count running servers by environment (one Hub API call, at most every
        ``servers_ttl`` seconds). A failing Hub keeps the last counts."""
        if self._active_users is None:
            return
        now = self.clock()
        if self._servers_at is not None and now - self._servers_at < self.servers_ttl:
            return
        try:
            users = await self._active_users()
        except Exception as e:  # the Hub restarting must not break the scrape
            log.warning("metrics: cannot list the Hub's servers: %s", e)
            return
        counts: dict[str, int] = {}
        for user in users:
            for server in (user.get("servers") or {}).values():
                if not server.get("ready"):
                    continue
                options = server.get("user_options") or {}
                if options.get("environment"):
                    key = options["environment"]
                elif options.get("template"):
                    key = f"template:{options['template']}"
                else:
                    key = ""
                counts[key] = counts.get(key, 0) + 1
        self._servers, self._servers_at = counts, now

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTime:
    """Gauges computed when scraped."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []  # computed at scrape: nothing to check at registration

    def collect(self):
        m = self.metrics
        queue = GaugeMetricFamily("rees_build_queue_length",
                                  "Builds waiting for a build slot.")
        queue.add_metric([], _safe(m._queue_length, 0))
        yield queue
        servers = GaugeMetricFamily(
            "rees_running_servers", "Ready servers by environment (template:<name> for "
            "templates' plain images, '' for others), from the Hub's active users, at most "
            f"{m.servers_ttl:g} s old.", labels=["environment"])
        for environment, count in sorted(m._servers.items()):
            servers.add_metric([environment], count)
        yield servers
        pools = GaugeMetricFamily("rees_pool_available",
                                  "Warm pooled servers available to claim, by template.",
                                  labels=["template"])
        for template, count in sorted(_safe(m._pools, {}).items()):
            pools.add_metric([template], count)
        yield pools
        disk = GaugeMetricFamily("rees_images_disk_bytes", "Bytes of the environments' "
                                 "current images the engine has (as the catalog records "
                                 "them; images sharing layers are each counted whole).")
        disk.add_metric([], _safe(m._disk, 0))
        yield disk


def _safe(read, default):
    try:
        return read()
    except Exception as e:
        log.warning("metrics: %s", e)
        return default
