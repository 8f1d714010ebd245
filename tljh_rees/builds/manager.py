"""The build queue: resolve, answer from cache, join identical requests, run, cancel.

One instance lives in the service. Builds wait in a first-in-first-out queue served by
``concurrency`` workers; each build's events go to its log file and live listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from dataclasses import dataclass, field

from docker.errors import APIError, ImageNotFound
from sqlalchemy import select
from traitlets import Bool, Int
from traitlets.config import LoggingConfigurable

from ..engine.catalog import (
    image_labels,
    image_of_commit,
    image_tag,
    list_environments,
    relabel,
)
from ..errors import InputError
from ..store.models import Build, Environment, iso, utcnow
from .events import BuildEvents
from .git import GitError, checkout, redact, resolve_ref
from .repo2docker import BuildFailed, stop_process_group
from .request import BuildRequest

ACTIVE = ("queued", "running")


@dataclass
class ActiveBuild:
    """What only the running service knows about a build: secrets, process, listeners."""

    build_id: str
    request: BuildRequest
    events: BuildEvents
    commit: str | None
    process: asyncio.subprocess.Process | None = None
    cancelled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class BuildManager(LoggingConfigurable):
    concurrency = Int(1, config=True, help="Builds run at once (each uses the CPU fully).")
    allow_local_repos = Bool(False, config=True,
                             help="Allow file:// URLs and local paths as repositories.")
    timeout = Int(3600, config=True, help="Seconds a build may take before it is stopped.")

    def __init__(self, service, **kwargs):
        super().__init__(**kwargs)
        self.service = service
        self.active: dict[str, ActiveBuild] = {}
        self.pending: list[str] = []
        self.wakeup = asyncio.Event()
        self.workers: list[asyncio.Task] = []
        self.submitting: dict[tuple[str, str], asyncio.Future] = {}
        self.stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.reconcile)
        self.recover()
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]

    def _pid_file(self, build_id: str) -> str:
        return os.path.join(self.service.state_dir, "running", build_id)

    def _remember_process(self, build_id: str, proc) -> None:
        """Note repo2docker's process group, so a crashed service's successor can stop it."""
        os.makedirs(os.path.dirname(self._pid_file(build_id)), exist_ok=True)
        with open(self._pid_file(build_id), "w") as f:
            f.write(str(proc.pid))

    def _stop_orphan(self, build_id: str) -> None:
        try:
            with open(self._pid_file(build_id)) as f:
                pid = int(f.read())
            os.killpg(pid, signal.SIGTERM)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            pass
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._pid_file(build_id))

    async def shutdown(self) -> None:
        """Stop the workers and running builds, leaving their records for the next start
        to re-queue."""
        self.stopping = True
        for active in self.active.values():
            if active.process is not None:
                stop_process_group(active.process)
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    def recover(self) -> None:
        """Builds a previous run left unfinished: re-queue them, or fail private ones."""
        with self.service.db() as db:
            builds = db.scalars(select(Build).where(Build.status.in_(ACTIVE))
                                .order_by(Build.created)).all()
            for build in builds:
                self._stop_orphan(build.id)
                log = self.service.logs.open(build.id)
                last = self.service.logs.read(build.id)
                events = BuildEvents(log, first_id=max([e.get("id") or 0 for e in last] + [0]) + 1)
                if build.private:
                    build.status, build.finished = "failed", utcnow()
                    build.error = ("interrupted by a restart of the service; credentials are "
                                   "never stored, so submit the build again")
                    events.phase("failed", build.error)
                    continue
                build.status = "queued"
                env = db.get(Environment, build.environment)
                request = BuildRequest(repo=build.repo, ref=build.ref, name=build.environment,
                                       profile=build.profile, owner=build.owner, local_ok=True,
                                       public=env.public if env else True,
                                       display_name=env.display_name if env else "",
                                       description=env.description if env else "",
                                       spec_name=env.spec_name if env else None,
                                       spec_version=build.spec_version)
                self.active[build.id] = ActiveBuild(build.id, request, events, build.commit)
                self.pending.append(build.id)
                events.phase("queued", "re-queued after a restart of the service")
            db.commit()
        self.wakeup.set()

    def reconcile(self) -> None:
        """Make environment records agree with the images present (images win)."""
        images = list_environments(self.service.docker_api())
        with self.service.db() as db:
            rows = {e.name: e for e in db.scalars(select(Environment)).all()}
            for name, env in images.items():
                row = rows.get(name)
                if row is None:
                    row = Environment(name=name, repo=env.label("repo"), owner=env.label("owner"))
                    db.add(row)
                row.image, row.commit = env.image, env.label("commit") or None
                row.ref = env.label("ref") or row.ref or "HEAD"
                row.display_name = row.display_name or env.label("display_name")
                row.description = row.description or env.label("description")
                row.public = env.public
            for name, row in rows.items():
                if name not in images and row.image:
                    self.log.warning("environment %s: its image %s is gone", name, row.image)
                    row.image = None
            db.commit()

    # -- submitting -----------------------------------------------------------------------

    async def submit(self, request: BuildRequest, is_admin: bool = False) -> dict:
        """Start (or join, or answer from cache) a build; returns its JSON."""
        if not request.local_ok and not self.allow_local_repos and (
                request.repo.startswith("/") or request.repo.startswith("file:")):
            raise InputError("repo", "local repositories are not allowed")
        with self.service.db() as db:
            env = db.get(Environment, request.name)
            if env is not None and env.repo != request.repo:
                raise InputError("name", f"the environment {request.name!r} already builds from "
                                         f"{env.repo}; choose another name", status=409)
            if env is not None and env.owner and env.owner != request.owner and not is_admin:
                raise InputError("name", f"the environment {request.name!r} belongs to "
                                         f"{env.owner}; only they or an admin can rebuild it",
                                 status=403)
        try:
            commit = await asyncio.to_thread(resolve_ref, request.repo, request.ref,
                                             request.credentials)
        except GitError as e:
            raise InputError("ref" if "branch or tag" in str(e) else "repo",
                             f"cannot read the repository: {e}", status=422) from None

        if commit:
            joined = self._find_active(request.name, commit)
            if joined:
                return self.build_json(joined)
            key = (request.name, commit)
            if key in self.submitting:  # an identical request is between checks: join it
                return self.build_json(await asyncio.shield(self.submitting[key]))
            self.submitting[key] = asyncio.get_running_loop().create_future()
            try:
                build_id = await self._start(request, commit)
                self.submitting[key].set_result(build_id)
            except BaseException as e:
                self.submitting[key].set_exception(e)
                self.submitting[key].exception()  # retrieved: joiners re-raise it
                raise
            finally:
                del self.submitting[key]
        else:
            build_id = await self._start(request, None)
        return self.build_json(build_id)

    async def _start(self, request: BuildRequest, commit: str | None) -> str:
        """Answer from the cache, or record and queue a new build; returns its id."""
        if commit:
            cached = await asyncio.to_thread(self._cached_image, request.name, commit)
            if cached is None:
                cached = await asyncio.to_thread(self._image_from_other_environment,
                                                 request, commit)
            if cached:
                return self._record_cache_hit(request, commit, cached)
        build_id = uuid.uuid4().hex[:16]
        with self.service.db() as db:
            build = Build(id=build_id, environment=request.name, repo=request.repo,
                          ref=request.ref, commit=commit, owner=request.owner,
                          profile=request.profile, status="queued",
                          private=request.credentials is not None,
                          spec_version=request.spec_version)
            db.add(build)
            self._upsert_environment(db, request, commit=None)
            db.commit()
        events = BuildEvents(self.service.logs.open(build_id))
        self.active[build_id] = ActiveBuild(build_id, request, events, commit)
        self.pending.append(build_id)
        events.phase("queued", f"waiting for a build slot (position {len(self.pending)})")
        self.wakeup.set()
        return build_id

    def _find_active(self, name: str, commit: str) -> str | None:
        for build_id, active in self.active.items():
            if active.request.name == name and active.commit == commit and not active.cancelled:
                return build_id
        return None

    def _cached_image(self, name: str, commit: str) -> str | None:
        tag = image_tag(name, commit)
        try:
            info = self.service.docker_api().inspect_image(tag)
        except ImageNotFound:
            return None
        labels = info["Config"].get("Labels") or {}
        ok = (labels.get("org.tljh-rees.environment") == name
              and labels.get("org.tljh-rees.commit") == commit)
        return tag if ok else None

    def _image_from_other_environment(self, request: BuildRequest, commit: str) -> str | None:
        """Reuse another environment's image of the same repository and commit."""
        api = self.service.docker_api()
        source = image_of_commit(api, request.repo, commit)
        if source is None:
            return None
        tag = image_tag(request.name, commit)
        relabel(api, source, self._labels(request, commit, build_id=""), tag=tag)
        return tag

    def _labels(self, request: BuildRequest, commit: str, build_id: str) -> dict:
        return image_labels(
            environment=request.name, display_name=request.display_name,
            description=request.description, repo=request.repo, ref=request.ref,
            commit=commit, owner=request.owner, created=iso(utcnow()),
            profile=request.profile, public=str(request.public).lower(), build_id=build_id)

    def _record_cache_hit(self, request: BuildRequest, commit: str, image: str) -> str:
        build_id = uuid.uuid4().hex[:16]
        now = utcnow()
        with self.service.db() as db:
            db.add(Build(id=build_id, environment=request.name, repo=request.repo,
                         ref=request.ref, commit=commit, image=image, owner=request.owner,
                         profile=request.profile, status="built", cache_hit=True,
                         spec_version=request.spec_version, started=now, finished=now))
            self._upsert_environment(db, request, commit=commit, image=image)
            db.commit()
        events = BuildEvents(self.service.logs.open(build_id))
        events.phase("built", f"{image} is already built from commit {commit[:12]}")
        return build_id

    def _upsert_environment(self, db, request: BuildRequest, commit: str | None,
                            image: str | None = None) -> None:
        env = db.get(Environment, request.name)
        if env is None:
            env = Environment(name=request.name, repo=request.repo, owner=request.owner)
            db.add(env)
        env.ref = request.ref
        env.profile = request.profile
        env.public = request.public
        env.display_name = request.display_name or env.display_name or ""
        env.description = request.description or env.description or ""
        if request.spec_name:
            env.spec_name = request.spec_name
        if commit and image:
            env.commit, env.image = commit, image
            env.spec_version = request.spec_version or env.spec_version

    # -- running --------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            while not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
            build_id = self.pending.pop(0)
            self._announce_positions()
            try:
                await self._run(self.active[build_id])
            except Exception:  # a worker must survive any one build's failure
                self.log.exception("build %s: unexpected error", build_id)

    def _announce_positions(self) -> None:
        for position, build_id in enumerate(self.pending, start=1):
            self.active[build_id].events.phase("queued", f"queue position {position}")

    async def _run(self, active: ActiveBuild) -> None:
        request, events = active.request, active.events
        secrets_of = request.credentials

        def line(text: str) -> None:
            events.line(redact(text, secrets_of))

        self._update(active.build_id, status="running", started=utcnow())
        events.phase("running", "fetching the repository")
        workdir = tempfile.mkdtemp(prefix="rees-build-")
        status, error, image = "failed", "", None
        try:
            source = f"{workdir}/repo"
            ref = active.commit or request.ref
            commit = await asyncio.to_thread(checkout, request.repo, ref, source,
                                             request.credentials)
            active.commit = commit
            self._update(active.build_id, commit=commit)
            line(f"checked out {request.repo} at {commit}\n")
            image = image_tag(request.name, commit)
            if await asyncio.to_thread(self._cached_image, request.name, commit):
                line(f"{image} is already built\n")
                status = "built"
                self._update(active.build_id, cache_hit=True)
            else:
                if active.cancelled:
                    raise asyncio.CancelledError
                events.phase("building", f"building {image} with repo2docker")
                labels = self._labels(request, commit, active.build_id)

                def keep(proc):
                    active.process = proc
                    self._remember_process(active.build_id, proc)

                await asyncio.wait_for(
                    self.service.builder.build(source, image, labels, line, keep),
                    timeout=self.timeout)
                status = "built"
        except asyncio.TimeoutError:
            error = f"the build took longer than {self.timeout}s and was stopped"
            if active.process:
                stop_process_group(active.process)
        except (GitError, BuildFailed) as e:
            error = redact(str(e), secrets_of)
        except asyncio.CancelledError:
            if self.stopping:
                raise
        except Exception as e:
            self.log.exception("build %s failed", active.build_id)
            error = f"internal error: {redact(str(e), secrets_of)}"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._pid_file(active.build_id))
        if self.stopping:
            return  # the record stays 'running': the next start re-queues it
        if active.cancelled:
            status, error = "cancelled", "cancelled"
        await self._finish(active, status, error, image if status == "built" else None)

    async def _finish(self, active: ActiveBuild, status: str, error: str,
                      image: str | None) -> None:
        self._update(active.build_id, status=status, error=error, image=image,
                     finished=utcnow())
        if image:
            with self.service.db() as db:
                self._upsert_environment(db, active.request, active.commit, image)
                db.commit()
            await asyncio.to_thread(self._prune_old_images, active.request.name, image)
        message = {"built": f"built {image}", "cancelled": "the build was cancelled"}
        active.events.phase(status, message.get(status, error))
        self.active.pop(active.build_id, None)
        active.done.set()

    def _prune_old_images(self, name: str, keep: str) -> None:
        """Remove the environment's older images that no container uses any more."""
        api = self.service.docker_api()
        for entry in api.images(filters={"label": f"org.tljh-rees.environment={name}"}):
            if keep in (entry.get("RepoTags") or []):
                continue
            try:
                api.remove_image(entry["Id"])
            except APIError:
                pass  # still used by a running server: it stays until that stops

    def _update(self, build_id: str, **fields) -> None:
        with self.service.db() as db:
            build = db.get(Build, build_id)
            for key, value in fields.items():
                setattr(build, key, value)
            db.commit()

    # -- cancelling and reading -----------------------------------------------------------

    async def cancel(self, build_id: str) -> dict:
        active = self.active.get(build_id)
        if active is None:
            with self.service.db() as db:
                build = db.get(Build, build_id)
                if build is None:
                    raise InputError("id", f"no build {build_id}", status=404)
                raise InputError("id", f"the build is already {build.status}", status=409)
        active.cancelled = True
        if build_id in self.pending:
            self.pending.remove(build_id)
            await self._finish(active, "cancelled", "cancelled", None)
            self._announce_positions()
        elif active.process is not None:
            stop_process_group(active.process)
            await active.done.wait()
        else:
            await active.done.wait()
        return self.build_json(build_id)

    def queue_position(self, build_id: str) -> int | None:
        return self.pending.index(build_id) + 1 if build_id in self.pending else None

    def build_json(self, build_or_id) -> dict:
        if isinstance(build_or_id, str):
            with self.service.db() as db:
                build = db.get(Build, build_or_id)
        else:
            build = build_or_id
        url = self.service.url("api/builds", build.id)
        return {
            "id": build.id, "environment": build.environment, "repo": build.repo,
            "ref": build.ref, "commit": build.commit, "image": build.image,
            "status": build.status, "queue_position": self.queue_position(build.id),
            "cache_hit": build.cache_hit, "owner": build.owner, "profile": build.profile,
            "error": build.error or None, "created": iso(build.created),
            "started": iso(build.started), "finished": iso(build.finished),
            "spec_version": build.spec_version,
            "url": url, "events_url": url + "/events",
        }
