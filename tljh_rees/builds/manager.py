"""The build queue: resolve, answer from cache, join identical requests, run, cancel.

One instance lives in the service. Builds wait in a first-in-first-out queue served by
``concurrency`` workers; each build's events go to its log file and live listeners.
What a build may change is decided by the catalog: a request claims its environment
(or is refused) in the same transaction that records the build, and a finished build
lands only in the environment it was recorded for — not in a new one that took the
name after a delete.
"""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select
from traitlets import Bool, Int
from traitlets.config import LoggingConfigurable

from ..catalog import Catalog, Viewer
from ..engine.images import Images, image_tag, provenance_labels
from ..errors import Conflict, Forbidden
from ..store.logs import LogStore
from ..store.models import Build, Environment, iso, utcnow
from .builder import BuildFailed, Builder
from .events import BuildEvents
from .git import GitError
from .orphans import ProcessNotes
from .pipeline import Built, fetch_and_build
from .repo2docker import stop_process_group
from .request import BuildRequest
from .sources import GitSource

ENGINE_DOWN = ("the Docker engine stopped answering during the build (was it stopped or "
               "restarted?); build again once it is back (the log shows the builder's own "
               "message)")
ENGINE_PING_SECONDS = 5


def log_failure(error: OSError) -> str:
    """Why a build whose log cannot be written was stopped, for the person who asked."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("stopped: no space left on the server for the build log; ask an "
                "administrator to free some, then build again")
    return f"stopped: the build log could not be written ({error.strerror or error})"


@dataclass
class ActiveBuild:
    """What only the running service knows about a build: secrets, process, listeners."""

    build_id: str
    environment_id: int
    request: BuildRequest
    events: BuildEvents
    commit: str | None
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task | None = None
    cancelled: bool = False
    started: float | None = None  # time.monotonic() when it left the queue
    done: asyncio.Event = field(default_factory=asyncio.Event)


class BuildManager(LoggingConfigurable):
    concurrency = Int(1, config=True, help="Builds run at once (each uses the CPU fully).")
    timeout = Int(3600, config=True, help="Seconds a build may take before it is stopped.")
    allow_local_repos = Bool(False, config=True,
                             help="Allow file:// URLs and local paths as repositories.")

    def __init__(self, catalog: Catalog, logs: LogStore, builder: Builder, images: Images,
                 processes: ProcessNotes, **kwargs):
        super().__init__(**kwargs)
        self.catalog = catalog
        self.logs = logs
        self.builder = builder
        self.images = images
        self.processes = processes
        self.active: dict[str, ActiveBuild] = {}
        self.pending: list[str] = []
        self.wakeup = asyncio.Event()
        self.workers: list[asyncio.Task] = []
        self.submitting: dict[tuple[str, str], asyncio.Future] = {}
        self.stopping = False
        # Called with the environment when a build of it completes, and with the
        # environment and its build ids when it is removed (gallery, exports).
        self.on_built: list[Callable[[Environment], None]] = []
        self.on_removed: list[Callable[[Environment, list[str]], None]] = []
        # Called with a build's outcome (built, failed, cancelled) and the seconds it ran
        # (None when it did not run: a cache answer, a cancel in the queue) — metrics.
        self.on_finished: list[Callable[[str, float | None], None]] = []
        # Checks one more queued build (``operations.quotas.Quotas``); None: no quotas.
        self.quotas = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.recover()
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]

    async def shutdown(self) -> None:
        """Stop the workers and running builds, leaving their records for the next start
        to re-queue."""
        self.stopping = True
        for active in self.active.values():
            if active.process is not None:
                stop_process_group(active.process)
            if active.task is not None:
                active.task.cancel()
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    def recover(self) -> None:
        """Builds a previous run left unfinished: re-queue them, or fail private ones."""
        with self.catalog.transaction() as db:
            builds = db.scalars(select(Build).where(Build.status.in_(Build.ACTIVE))
                                .order_by(Build.created)).all()
            for build in builds:
                self.processes.stop_orphan(build.id)
                last = self.logs.read(build.id)
                first_id = max([e.get("id") or 0 for e in last] + [0]) + 1
                events = BuildEvents(self.logs.open(build.id), first_id=first_id)
                why = self._not_resumable(build)
                if why:
                    build.status, build.finished = "failed", utcnow()
                    build.error = f"interrupted by a restart of the service; {why}"
                    events.phase("failed", build.error)
                    continue
                build.status = "queued"
                # Validated when it was submitted; the requester's rights were checked then.
                local = self.allow_local_repos or build.spec_version is not None
                request = BuildRequest(source=GitSource(build.repo, allow_local=local),
                                       ref=build.ref, name=build.environment,
                                       requester=Viewer(build.owner),
                                       spec_version=build.spec_version)
                self.active[build.id] = ActiveBuild(build.id, build.environment_id, request,
                                                    events, build.commit)
                self.pending.append(build.id)
                events.phase("queued", "re-queued after a restart of the service")
        self.wakeup.set()

    @staticmethod
    def _not_resumable(build: Build) -> str:
        """Why a build cannot be fetched again after a restart ('' if it can)."""
        if build.private:
            return "credentials are never stored, so submit the build again"
        if build.source != GitSource.kind:
            return "its source is known only to the request that made it: send it again " \
                   "(for a Binder link, open the link again)"
        return ""

    # -- submitting -----------------------------------------------------------------------

    async def rebuild_removed(self, name: str) -> Build | None:
        """Build environment ``name`` again at its recorded commit, if its image was
        removed (by the disk garbage collector, or by hand): what launching it does. The
        build is the owner's, as their last one was; None when it cannot be rebuilt here
        (never built, built with credentials or from a Binder link's archive: those are
        rebuilt by sending them again)."""
        with self.catalog.session() as db:
            env = db.scalars(select(Environment).where(Environment.name == name)).first()
            last = db.get(Build, env.last_build_id) if env and env.last_build_id else None
        if env is None or env.launchable or not env.commit:
            return None
        if last is not None and last.status in Build.ACTIVE:
            return last  # being rebuilt already
        if last is not None and self._not_resumable(last):
            return None
        local = self.allow_local_repos or env.spec_version is not None
        request = BuildRequest(source=GitSource(env.repo, allow_local=local), ref=env.commit,
                               name=env.name, requester=Viewer(env.owner, admin=True,
                                                               builder=True),
                               spec_name=env.spec_name, spec_version=env.spec_version)
        return await self.submit(request, commit=env.commit)

    async def submit(self, request: BuildRequest, commit: str | None = None) -> Build:
        """Start (or join, or answer from cache) a build; returns its record. ``commit``:
        the version ``request.ref`` names, when the caller resolved it already (a Binder
        link's provider), so the repository is not asked again."""
        self._precheck(request)  # fail fast; the claim checks again, atomically
        commit = commit or await request.source.resolve(request.ref)
        if not commit:
            return await self._start(request, None)
        joined = self._find_active(request.name, commit)
        if joined:
            return self.record(joined)
        key = (request.name, commit)
        if key in self.submitting:  # an identical request is between checks: join it
            return self.record(await asyncio.shield(self.submitting[key]))
        self.submitting[key] = asyncio.get_running_loop().create_future()
        try:
            build = await self._start(request, commit)
            self.submitting[key].set_result(build.id)
            return build
        except BaseException as e:
            self.submitting[key].set_exception(e)
            self.submitting[key].exception()  # retrieved: joiners re-raise it
            raise
        finally:
            del self.submitting[key]

    def _precheck(self, request: BuildRequest) -> None:
        with self.catalog.transaction() as db:
            self.catalog.claim(db, request.requester, request.name, request.repo)
            db.rollback()  # only the checks were wanted

    async def _start(self, request: BuildRequest, commit: str | None) -> Build:
        """Claim the environment and record the build in one step; then answer from the
        cache, or reuse another environment's image of this commit, or queue it."""
        build_id = uuid.uuid4().hex[:16]
        reuse_image = None
        with self.catalog.transaction() as db:
            env = self.catalog.claim(
                db, request.requester, request.name, request.repo,
                spec_name=request.spec_name, profile=request.profile, public=request.public,
                display_name=request.display_name, description=request.description)
            build = Build(id=build_id, environment_id=env.id, environment=env.name,
                          repo=request.repo, source=request.source.kind, ref=request.ref,
                          commit=commit,
                          owner=request.requester.name, profile=env.profile, status="queued",
                          private=request.source.private, spec_version=request.spec_version)
            cached = self.catalog.cached_image(db, request.repo, commit) if commit else None
            if cached is not None and cached.id == env.id and (
                    env.registry_ref or not self.builder.publishes):
                now = utcnow()
                build.status, build.cache_hit, build.started, build.finished = \
                    "built", True, now, now
                build.image, build.image_id = env.image, env.image_id
                env.ref = request.ref
            elif cached is not None:
                reuse_image, build.status = cached.image_id, "running"
            else:  # it would wait in the queue: refused over a quota (nothing recorded)
                self._check_quotas(request.requester)
            db.add(build)
            env.last_build_id = build_id
            env_id = env.id
        events = BuildEvents(self.logs.open(build_id))
        if build.status == "built":
            events.phase("built", f"{build.image} is already built from commit {commit[:12]}")
            self._tell_finished("built", None)
            return build
        if reuse_image and await self._reuse(build_id, env_id, request, commit, reuse_image,
                                             events):
            return self.record(build_id)
        active = ActiveBuild(build_id, env_id, request, events, commit)
        self.active[build_id] = active
        self.pending.append(build_id)
        if build.status != "queued":
            self._update(build_id, status="queued")
        events.phase("queued", f"waiting for a build slot (position {len(self.pending)})")
        self.wakeup.set()
        return self.record(build_id)

    def _check_quotas(self, requester: Viewer) -> None:
        if self.quotas is None:
            return
        mine = sum(self.active[b].request.requester.name == requester.name
                   for b in self.pending if b in self.active)
        self.quotas.check_builds(requester, mine, len(self.pending))

    def _tell_finished(self, status: str, seconds: float | None) -> None:
        for hook in self.on_finished:
            try:
                hook(status, seconds)
            except Exception:
                self.log.exception("on_finished hook failed")

    async def _reuse(self, build_id: str, env_id: int, request: BuildRequest, commit: str,
                     image_id: str, events: BuildEvents) -> bool:
        """Tag another environment's image of the same repository and commit as this
        one's (no build, no new layer); False if that image is gone."""
        tag = image_tag(request.name, commit)
        info = await asyncio.to_thread(self.images.inspect, image_id)
        if info is None:
            return False
        await asyncio.to_thread(self.images.tag, image_id, tag)
        try:
            ref = await self.builder.publish(tag, events.line)
        except BuildFailed as e:
            self._record_outcome(build_id, "failed", str(e), None)
            events.phase("failed", str(e))
            self._tell_finished("failed", None)
            return True
        built = Built(commit, tag, info.id, info.size, reused=True,
                      services=self._declared_with(image_id), registry_ref=ref)
        env = self._record_outcome(build_id, "built", "", built, cache_hit=True)
        events.phase("built", f"{tag} is already built from commit {commit[:12]}")
        self._tell_finished("built", None)
        await self._after_built(build_id, env, built)
        return True

    def _declared_with(self, image_id: str) -> list | None:
        """The services declared by the repository at the commit a reused image was
        built from, as the build that made it recorded them (None: none recorded)."""
        with self.catalog.session() as db:
            declared = db.scalars(select(Build.services).where(
                Build.image_id == image_id, Build.status == "built",
                Build.services.is_not(None)).order_by(Build.finished.desc()).limit(1)).first()
        return json.loads(declared) if declared else None

    def _find_active(self, name: str, commit: str) -> str | None:
        for build_id, active in self.active.items():
            if active.request.name == name and active.commit == commit and not active.cancelled:
                return build_id
        return None

    # -- running --------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            while not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
            build_id = self.pending.pop(0)
            self._announce_positions()
            active = self.active[build_id]
            active.task = asyncio.create_task(self._run(active))
            await asyncio.wait([active.task])  # a cancelled build does not stop the worker
            if active.task.done() and not active.task.cancelled() and active.task.exception():
                self.log.error("build %s: unexpected error", build_id,
                               exc_info=active.task.exception())

    def _announce_positions(self) -> None:
        for position, build_id in enumerate(self.pending, start=1):
            self.active[build_id].events.phase("queued", f"queue position {position}")

    async def _run(self, active: ActiveBuild) -> None:
        request, events, source = active.request, active.events, active.request.source

        def line(text: str) -> None:
            events.line(source.redact(text))
            if events.log.error is not None:  # e.g. the disk is full: stop the builder
                raise BuildFailed(log_failure(events.log.error))

        def keep(proc) -> None:
            active.process = proc
            self.processes.remember(active.build_id, proc.pid)

        self._update(active.build_id, status="running", started=utcnow())
        active.started = time.monotonic()
        events.phase("running", "fetching the repository")
        workdir = tempfile.mkdtemp(prefix="rees-build-")
        status, error, built = "failed", "", None
        engine_suspect = False  # a failure the engine going away would also explain
        try:
            if events.log.error is not None:  # already when it was queued
                raise BuildFailed(log_failure(events.log.error))
            built = await asyncio.wait_for(fetch_and_build(
                source, active.commit or request.ref, workdir, self.builder, self.images,
                image_for=lambda commit: image_tag(request.name, commit),
                labels_for=lambda commit: provenance_labels(
                    environment=request.name, repo=request.repo, ref=request.ref,
                    commit=commit, build_id=active.build_id, created=iso(utcnow())),
                reuse=lambda commit: self._current_image(active.environment_id, commit),
                on_line=line, on_process=keep, services=self.catalog.services),
                timeout=self.timeout)
            status = "built"
        except asyncio.TimeoutError:
            error = f"the build took longer than {self.timeout}s and was stopped"
        except GitError as e:
            error = source.redact(str(e))
        except BuildFailed as e:
            error, engine_suspect = source.redact(str(e)), events.log.error is None
        except asyncio.CancelledError:
            if self.stopping:
                raise  # the record stays 'running': the next start re-queues it
        except Exception as e:
            self.log.exception("build %s failed", active.build_id)
            error = f"internal error: {source.redact(str(e))}"
            engine_suspect = True
        finally:
            if active.process is not None and active.process.returncode is None:
                stop_process_group(active.process)
            shutil.rmtree(workdir, ignore_errors=True)
            self.processes.forget(active.build_id)
        if engine_suspect and not active.cancelled and await self._engine_down():
            # repo2docker's own words here are its docker command line and an exit code
            self.log.warning("build %s failed with the engine down: %s", active.build_id,
                             error)
            error = ENGINE_DOWN
        if active.cancelled:
            status, error, built = "cancelled", "cancelled", None
        await self._finish(active, status, error, built)

    async def _engine_down(self) -> bool:
        """Whether the engine fails to answer now. A cancel arriving meanwhile makes the
        build end as cancelled (False here); a service stopping leaves it to be re-queued."""
        try:
            return not await asyncio.wait_for(asyncio.to_thread(self.images.reachable),
                                              ENGINE_PING_SECONDS)
        except asyncio.TimeoutError:
            return True
        except asyncio.CancelledError:
            if self.stopping:
                raise
            return False

    def _current_image(self, environment_id: int, commit: str) -> str | None:
        """The environment's own image, when it is of ``commit`` (a rebuild of the same
        commit, e.g. a short sha that named it)."""
        with self.catalog.session() as db:
            env = db.get(Environment, environment_id)
            if env is not None and env.commit == commit and env.launchable:
                return env.image_id
        return None

    async def _finish(self, active: ActiveBuild, status: str, error: str,
                      built: Built | None) -> None:
        if built is not None:
            active.commit = built.commit
        env = self._record_outcome(active.build_id, status, error, built,
                                   cache_hit=bool(built and built.reused))
        self.active.pop(active.build_id, None)  # from now on, new requests don't join it
        message = {"built": f"built {built.image}" if built else "built",
                   "cancelled": "the build was cancelled"}
        active.events.phase(status, message.get(status, error))
        active.done.set()
        self._tell_finished(status, None if active.started is None
                            else time.monotonic() - active.started)
        if status == "built":
            await self._after_built(active.build_id, env, built)

    def _record_outcome(self, build_id: str, status: str, error: str, built: Built | None,
                        cache_hit: bool = False) -> Environment | None:
        """Record the outcome and, if built, make the image the environment's current
        one, in one transaction. Returns the environment (None if it was deleted)."""
        with self.catalog.transaction() as db:
            build = db.get(Build, build_id)
            if build is None:
                return None
            env = db.get(Environment, build.environment_id)
            build.status, build.error, build.finished = status, error, utcnow()
            if built is not None:
                build.commit, build.image, build.image_id = \
                    built.commit, built.image, built.image_id
                build.cache_hit = cache_hit
                if built.services is not None:
                    build.services = json.dumps(built.services)
                if status == "built" and env is not None:
                    self.catalog.set_image(db, env, build, built.size)
                    env.registry_ref = built.registry_ref or None
            return env

    async def _after_built(self, build_id: str, env: Environment | None, built: Built) -> None:
        """Tidy the environment's older images and tell the listeners."""
        if env is None:  # deleted while it was built: its image belongs to nobody
            self.log.info("build %s finished after its environment was deleted", build_id)
            await asyncio.to_thread(self._drop_tag_if_unused, built.image)
            return
        await asyncio.to_thread(self.images.remove_tags, env.name, built.image)
        for hook in self.on_built:
            hook(env)

    def _drop_tag_if_unused(self, tag: str) -> None:
        with self.catalog.session() as db:
            in_use = db.scalar(select(Environment.id).where(Environment.image == tag))
        if in_use is None:
            self.images.untag(tag)

    def _update(self, build_id: str, **fields) -> None:
        with self.catalog.transaction() as db:
            build = db.get(Build, build_id)
            if build is not None:
                for key, value in fields.items():
                    setattr(build, key, value)

    # -- cancelling and removing ----------------------------------------------------------

    async def cancel(self, viewer: Viewer, build_id: str) -> Build:
        build = self.catalog.build(viewer, build_id)
        if not viewer.may_manage(build.owner):
            raise Forbidden("only the build's owner or an admin can cancel it", field="id")
        active = self.active.get(build_id)
        if active is None:
            raise Conflict(f"the build is already {build.status}", field="id")
        await self._cancel(active)
        return self.record(build_id)

    async def _cancel(self, active: ActiveBuild) -> None:
        active.cancelled = True
        if active.build_id in self.pending:
            self.pending.remove(active.build_id)
            await self._finish(active, "cancelled", "cancelled", None)
            self._announce_positions()
            return
        if active.process is not None:
            stop_process_group(active.process)
        if active.task is not None:
            active.task.cancel()
        await active.done.wait()

    async def remove_environment(self, viewer: Viewer, name: str, force: bool) -> None:
        """Delete an environment with its builds, logs and images. Refused while servers
        run from it, unless ``force`` (they keep running until stopped)."""
        with self.catalog.session() as db:
            self.catalog.managed(db, viewer, name, "delete")
        running = await asyncio.to_thread(self.images.servers_using, name)
        if running and not force:
            raise Conflict(f"{len(running)} server(s) run from {name} ({', '.join(running)}); "
                           "stop them or delete with ?force=true", field="name")
        for active in [a for a in self.active.values() if a.request.name == name]:
            await self._cancel(active)
        env, build_ids = self.catalog.remove(viewer, name)
        for build_id in build_ids:
            self.logs.remove(build_id)
        await asyncio.to_thread(self.images.remove_tags, name, None, True)  # free the name
        for hook in self.on_removed:
            hook(env, build_ids)

    # -- reading --------------------------------------------------------------------------

    def record(self, build_id: str) -> Build:
        with self.catalog.session() as db:
            return db.get(Build, build_id)

    def queue_length(self) -> int:
        """Builds waiting for a slot now (the dashboard's samples)."""
        return len(self.pending)

    def queue_position(self, build_id: str) -> int | None:
        return self.pending.index(build_id) + 1 if build_id in self.pending else None

    def live_events(self, build_id: str) -> BuildEvents | None:
        active = self.active.get(build_id)
        return active.events if active else None
