"""Disk garbage collection on a busy machine: what goes, decided in one place.

* **Images** the service built. When the filesystem of the engine's data root is more
  than ``high`` percent used, images are removed until it is under ``low``; separately,
  their total size is kept under ``max_image_bytes`` (when set). Old builds of an
  environment and images of deleted environments go first, then environments' current
  images, least recently launched first (one never launched counts from its build).
  Never removed: an image a running container uses (servers, pooled servers, anything on
  the engine), and the current image of a pinned environment. The catalog then notes the
  image is gone (``Catalog.sync``), so the environment shows as needing a rebuild —
  except in multi-node mode, where an image the registry holds stays launchable (servers
  pull it from there).
* **The registry** (multi-node mode, ``swarm/registry_gc.py``): manifests of old builds
  and of deleted environments, then, for the registry this project runs, their blobs.
* **The build cache**: ``docker buildx prune`` of what is older than
  ``build_cache_hours``.
* **Build logs and SIF exports** older than ``keep_days``, except those of the last build
  of each environment (an export of an environment's current image is kept).

``run(dry_run=True)`` says what would go, removing nothing.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select
from traitlets import Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..catalog import Catalog
from ..engine.images import BuiltImage, Images
from ..settings import readable_size
from ..store.models import Build, Environment, Template, utcnow

log = logging.getLogger("tljh_rees.gc")

# (used bytes, total bytes) of the engine's data disk
DiskUsage = Callable[[], tuple[int, int]]


@dataclass(frozen=True)
class Removal:
    kind: str  # image, build-cache, log, export, registry-manifest, registry-blobs
    what: str
    reason: str
    size: int

    def line(self, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        # a manifest's layers are freed (and measured) by the registry's blob collection,
        # which measures nothing in a dry run
        unmeasured = self.kind.startswith("registry-") and not self.size
        size = "" if unmeasured else f" ({readable_size(self.size)})"
        return f"{verb} {self.kind} {self.what}{size}: {self.reason}"


@dataclass
class Report:
    dry_run: bool
    removals: list[Removal] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # why images that might have gone stayed
    used_before: float | None = None  # percent of the data disk
    used_after: float | None = None

    @property
    def freed(self) -> int:
        return sum(r.size for r in self.removals)

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        disk = ""
        if self.used_before is not None:
            disk = f"; disk use {self.used_before:.1f}% → {self.used_after:.1f}%"
            if self.dry_run:
                disk += " (estimated)"
        return f"{len(self.removals)} removals, {verb} {readable_size(self.freed)}{disk}"


def percent(usage: tuple[int, int]) -> float:
    used, total = usage
    return 100.0 * used / total if total else 0.0


def statvfs_usage(path: str) -> tuple[int, int]:
    """(used, total) bytes of the filesystem holding ``path``, as ``df`` counts them."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return total - st.f_bfree * st.f_frsize, total


def docker_disk_usage(api: Callable) -> DiskUsage:
    """The engine's data disk (``docker info``'s DockerRootDir, e.g. /var/lib/docker)."""
    def usage() -> tuple[int, int]:
        return statvfs_usage(api().info().get("DockerRootDir") or "/var/lib/docker")
    return usage


_SIZE = re.compile(r"([\d.]+)\s*([kKMGTP]?)i?B\b")
_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
          "P": 1000**5}


def parse_docker_size(text: str) -> int:
    match = _SIZE.search(text)
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else 0


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


@dataclass
class Candidate:
    image: BuiltImage
    rank: tuple  # removal order: lowest first
    reason: str
    protected: str = ""  # why it must stay ("" = it may go)


class GarbageCollector(LoggingConfigurable):
    high = Float(85.0, config=True,
                 help="Percent of the engine's data disk above which images are removed "
                      "(rees.gc.high).")
    low = Float(70.0, config=True,
                help="Images are removed until the disk is under this percent (rees.gc.low).")
    max_image_bytes = Integer(
        0, config=True,
        help="Keep the images of environments under this many bytes in all; 0: no cap "
             "(rees.gc.max_image_bytes).")
    build_cache_hours = Integer(72, config=True,
                                help="Build cache older than this many hours is pruned "
                                     "(rees.gc.build_cache_hours); 0: never.")
    keep_days = Integer(30, config=True,
                        help="Build logs and exports older than this are removed, except "
                             "those of each environment's last build (rees.gc.keep_days).")
    interval = Integer(600, config=True,
                       help="Seconds between rounds in the service (rees.gc.interval).")
    image_prefix = Unicode(
        "rees-", config=True,
        help="Only images with a tag starting with this are collected (the service's "
             "environments are rees-<name>).")
    docker = Unicode("docker", config=True, help="The docker command (for buildx prune).")

    def __init__(self, catalog: Catalog, images: Images, disk_usage: DiskUsage | None,
                 logs_dir: str = "", exports_dir: str = "", registry=None, **kwargs):
        """``registry``: multi-node mode's ``swarm.registry_gc.RegistryCollector``."""
        super().__init__(**kwargs)
        self.catalog = catalog
        self.images = images
        self.disk_usage = disk_usage
        self.logs_dir = logs_dir
        self.exports_dir = exports_dir
        self.registry = registry

    # -- images ---------------------------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        """Every service-built image, in removal order, each saying why it would go or
        why it stays."""
        with self.catalog.session() as db:
            envs = list(db.scalars(select(Environment)).all())
            # a build's new image exists before the build records it as the current one
            building = set(db.scalars(select(Build.environment).where(
                Build.status.in_(Build.ACTIVE))).all())
        by_repo = {f"rees-{e.name}": e for e in envs}
        current = {}
        for env in envs:
            if env.image_id:
                current.setdefault(env.image_id, []).append(env)
        in_use = self.images.in_use()
        result = []
        for image in self.images.built_images():
            if not any(t.startswith(self.image_prefix) for t in image.tags) and \
                    image.id not in current:
                continue
            label = image.tags[0] if image.tags else image.id[:19]
            owners = current.get(image.id, [])
            if owners:
                env = min(owners, key=lambda e: self._last_use(e))
                when = self._last_use(env)
                reason = (f"environment {env.name}: last launched {when:%Y-%m-%d %H:%M}"
                          if env.last_launched else
                          f"environment {env.name}: never launched, built "
                          f"{when:%Y-%m-%d %H:%M}")
                if self.registry is not None and all(e.registry_ref for e in owners):
                    reason += " (the registry keeps it: servers pull it from there)"
                candidate = Candidate(image, (1, when.timestamp(), label), reason)
                pinned = [e.name for e in owners if e.pinned]
                if pinned:
                    candidate.protected = f"environment {', '.join(pinned)} is pinned"
            else:
                repos = {t.rsplit(":", 1)[0] for t in image.tags}
                live = sorted(by_repo[r].name for r in repos if r in by_repo)
                reason = (f"an old build of {', '.join(live)} (no longer its image)" if live
                          else "its environment was deleted")
                candidate = Candidate(image, (0, image.created, label), reason)
            being_built = sorted(by_repo[r].name for r in
                                 {t.rsplit(":", 1)[0] for t in image.tags}
                                 if r in by_repo and by_repo[r].name in building)
            if being_built:
                candidate.protected = f"a build of {', '.join(being_built)} is under way"
            if image.id in in_use:
                candidate.protected = "a running container uses it"
            result.append(candidate)
        return sorted(result, key=lambda c: c.rank)

    @staticmethod
    def _last_use(env: Environment) -> datetime:
        return _aware(env.last_launched or env.built or env.created) or \
            datetime.fromtimestamp(0, timezone.utc)

    def collect_images(self, report: Report) -> None:
        candidates = self.candidates()
        removable = [c for c in candidates if not c.protected]
        report.kept += [f"{c.image.tags[0] if c.image.tags else c.image.id}: {c.protected}"
                        for c in candidates if c.protected]
        gone: set[str] = set()

        def remove(candidate: Candidate, why: str) -> bool:
            image = candidate.image
            label = ", ".join(image.tags) or image.id
            if not report.dry_run and not self.images.remove_image(image):
                report.kept.append(f"{label}: the engine kept it (a container uses it)")
                return False
            gone.add(image.id)
            report.removals.append(Removal("image", label, f"{candidate.reason}; {why}",
                                           image.size))
            return True

        if self.max_image_bytes:
            total = sum(c.image.size for c in candidates)
            for candidate in removable:
                if total <= self.max_image_bytes:
                    break
                why = (f"images take {readable_size(total)}, over the cap of "
                       f"{readable_size(self.max_image_bytes)}")
                if remove(candidate, why):
                    total -= candidate.image.size
        if self.disk_usage is not None:
            sizes = {c.image.id: c.image.size for c in candidates}

            def used() -> float:  # estimated in a dry run; measured otherwise
                if report.dry_run:
                    return percent((usage[0] - sum(sizes[i] for i in gone), usage[1]))
                return percent(self.disk_usage())

            usage = self.disk_usage()
            if used() > self.high:
                for candidate in removable:
                    now = used()
                    if now < self.low:
                        break
                    if candidate.image.id in gone:
                        continue
                    why = f"the disk is {now:.1f}% used (over {self.high:g}%, down to " \
                          f"{self.low:g}%)"
                    remove(candidate, why)
        if gone and not report.dry_run:
            sizes, tags = self.images.present()
            for name in self.catalog.sync(sizes, tags, registry=self.registry is not None):
                log.warning("gc: environment %s: its image was removed; rebuild it", name)

    # -- build cache ----------------------------------------------------------------------

    def collect_build_cache(self, report: Report) -> None:
        if not self.build_cache_hours:
            return
        until = f"until={self.build_cache_hours}h"
        command = [self.docker, "buildx", "du", "--filter", until] if report.dry_run else \
            [self.docker, "buildx", "prune", "--force", "--filter", until]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            report.kept.append(f"build cache: {' '.join(command)} failed: {e}")
            return
        if out.returncode != 0:
            report.kept.append(f"build cache: {' '.join(command)} failed: "
                               f"{out.stderr.strip()[:300]}")
            return
        total = next((line for line in out.stdout.splitlines()
                      if line.strip().lower().startswith(("total:", "reclaimable:"))), "")
        size = parse_docker_size(total)
        if size:
            report.removals.append(Removal("build-cache", until,
                                           f"older than {self.build_cache_hours} hours",
                                           size))

    # -- build logs and exports -----------------------------------------------------------

    def collect_files(self, report: Report) -> None:
        if not self.keep_days:
            return
        cutoff = utcnow() - timedelta(days=self.keep_days)
        with self.catalog.session() as db:
            last = set(db.scalars(select(Environment.last_build_id)
                                  .where(Environment.last_build_id.is_not(None))).all())
            current = set(db.scalars(select(Environment.image_id)
                                     .where(Environment.image_id.is_not(None))).all())
            old = [(b.id, b.environment) for b in db.scalars(
                select(Build).where(Build.created < cutoff.replace(tzinfo=None)))
                if b.id not in last]
        why = f"older than {self.keep_days} days and not its environment's last build"
        if self.logs_dir:
            for build_id, env in old:
                self._remove_files(report, "log", f"{env}/{build_id}",
                                   [os.path.join(self.logs_dir, f"{build_id}.jsonl")], why)
        if self.exports_dir:
            for path in glob.glob(os.path.join(self.exports_dir, "*.json")):
                try:
                    with open(path) as f:
                        record = json.load(f)
                    created = datetime.fromisoformat(
                        str(record.get("finished") or record["created"]).replace("Z", "+00:00"))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if _aware(created) >= cutoff or record.get("image_id") in current:
                    continue
                self._remove_files(report, "export", record.get("filename") or path,
                                   [path[:-len(".json")] + ".sif", path], why)

    @staticmethod
    def _remove_files(report: Report, kind: str, what: str, paths: list[str],
                      why: str) -> None:
        existing = [p for p in paths if os.path.exists(p)]
        if not existing:
            return
        size = sum(os.path.getsize(p) for p in existing)
        if not report.dry_run:
            for path in existing:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
        report.removals.append(Removal(kind, what, why, size))

    # -- a round --------------------------------------------------------------------------

    def run(self, dry_run: bool = False) -> Report:
        """One round (blocking: call it in a thread from the event loop)."""
        report = Report(dry_run)
        before = self.disk_usage() if self.disk_usage is not None else None
        report.used_before = percent(before) if before else None
        self.collect_images(report)
        if self.registry is not None:
            self.registry.collect(report, self.catalog, self.image_prefix)
        self.collect_build_cache(report)
        self.collect_files(report)
        if before:
            if dry_run:
                report.used_after = percent((max(0, before[0] - report.freed), before[1]))
            else:
                report.used_after = percent(self.disk_usage())
        for removal in report.removals:
            log.info("gc: %s", removal.line(dry_run))
        return report


async def note_launches(hub, catalog: Catalog) -> set[str]:
    """Record ``last_launched`` of the environments whose servers run now (servers of a
    template count for the template's environment). Returns their names."""
    names: set[str] = set()
    templates: set[str] = set()
    for user in await hub.active_users():
        for server in (user.get("servers") or {}).values():
            options = server.get("user_options") or {}
            if isinstance(options.get("environment"), str):
                names.add(options["environment"])
            elif isinstance(options.get("template"), str):
                templates.add(options["template"])
    if templates:
        with catalog.session() as db:
            names |= set(db.scalars(select(Template.image_name).where(
                Template.name.in_(templates), Template.image_kind == "environment")).all())
    catalog.note_launched(names)
    return names
