"""Exports in the service: one job per image, its SIF cached under ``{state_dir}/exports``.

A SIF is named by the image's id (``<sha256 hex>.sif``) with a ``.json`` record beside it,
so an export survives service restarts and is made once per image, however many people
ask. Jobs run one at a time (mksquashfs uses every core) in a worker thread.

In multi-node mode the disk garbage collector may remove an environment's image from
this machine while the registry keeps it: an export then pulls it back first (with the
project's registry credentials) and says so in its steps.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import threading
import time
from typing import Callable

import docker.errors
from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable

from ..store.models import Environment
from .convert import SifConverter, remove_tree
from .errors import ExportError
from .image import pull_if_gone
from .progress import Progress
from .targets import parse_target


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def in_daemon_thread(fn, *args):
    """Run ``fn`` in a daemon thread: unlike ``asyncio.to_thread``, a long export does not
    hold up the service's exit."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error):
        if not future.done():
            future.set_exception(error) if error else future.set_result(result)

    def target():
        try:
            result, error = fn(*args), None
        except BaseException as e:  # handed to the awaiting coroutine
            result, error = None, e
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, daemon=True, name="rees-export").start()
    return await future


class JobProgress(Progress):
    """Keeps the job's current step and fraction for the API to show."""

    def __init__(self, job: dict):
        super().__init__()
        self.job = job

    def step(self, name, total=None, unit="bytes"):
        super().step(name, total, unit)
        self.job.update(step=name, progress=None)
        self.job["steps"].append(name)

    def advance(self, done):
        super().advance(done)
        fraction = self.fraction
        self.job["progress"] = round(fraction, 3) if fraction is not None else None


class ExportManager(LoggingConfigurable):
    directory = Unicode("", config=True,
                        help="Where SIF files are kept; '' for {state_dir}/exports.")
    push_registry = Unicode(
        "", config=True,
        help="Also push every export to this ORAS registry prefix, e.g. "
             "oras://registry.example.org/rees (credentials from the service's environment "
             "or Docker config); the job then gives an 'apptainer pull oras://…' command.")
    concurrency = Int(1, config=True, help="Exports that run at once.")

    def __init__(self, docker_api, default_directory: str, registry=None,
                 pullable: Callable[[], set[str]] | None = None, **kwargs):
        """``docker_api()`` returns a docker ``APIClient``. Multi-node mode: ``registry``
        (``swarm.registry.Registry``) to pull removed images from; ``pullable()``: the ids
        of images the registry holds for environments (their exports stay)."""
        super().__init__(**kwargs)
        self.docker_api = docker_api
        self.registry = registry
        self.pullable = pullable or set
        if not self.directory:
            self.directory = default_directory
        self.work_dir = os.path.join(self.directory, "work")
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        self.jobs: dict[str, dict] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.slots = asyncio.Semaphore(self.concurrency)
        self._clean_leftovers()

    # -- files ----------------------------------------------------------------------------

    def sif_path(self, export_id: str) -> str:
        return os.path.join(self.directory, f"{export_id}.sif")

    def _record_path(self, export_id: str) -> str:
        return os.path.join(self.directory, f"{export_id}.json")

    def _clean_leftovers(self) -> None:
        """What a service stopped mid-export left: temporary SIFs and unpacked images."""
        for path in glob.glob(os.path.join(self.directory, ".*.part")):
            os.remove(path)
        for path in glob.glob(os.path.join(self.work_dir, "rees-sif-*")):
            remove_tree(path)

    def record(self, export_id: str) -> dict | None:
        """The finished export's record, if its SIF is there."""
        try:
            with open(self._record_path(export_id)) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if os.path.exists(self.sif_path(export_id)) else None

    def _write_record(self, export_id: str, record: dict) -> None:
        tmp = self._record_path(export_id) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self._record_path(export_id))

    def prune(self, api) -> None:
        """Forget exports whose image no longer exists (the environment was rebuilt or
        deleted), unless they are being made or the registry holds the image."""
        pullable = self.pullable()
        for path in glob.glob(os.path.join(self.directory, "*.json")):
            export_id = os.path.basename(path)[:-5]
            if export_id in self.tasks or f"sha256:{export_id}" in pullable:
                continue
            try:
                api.inspect_image(f"sha256:{export_id}")
            except docker.errors.ImageNotFound:
                for stale in (path, self.sif_path(export_id)):
                    if os.path.exists(stale):
                        os.remove(stale)
                self.jobs.pop(export_id, None)

    # -- jobs -----------------------------------------------------------------------------

    def get(self, export_id: str) -> dict | None:
        return self.jobs.get(export_id) or self.record(export_id)

    def forget_environment(self, env: Environment, build_ids: list[str]) -> None:
        """An environment was deleted: remove its exports (unless being made), so a new
        environment of the same name starts without them."""
        for path in glob.glob(os.path.join(self.directory, "*.json")):
            export_id = os.path.basename(path)[:-5]
            record = self.record(export_id)
            if record and record["environment"] == env.name and export_id not in self.tasks:
                for stale in (path, self.sif_path(export_id)):
                    if os.path.exists(stale):
                        os.remove(stale)
                self.jobs.pop(export_id, None)

    def for_environment(self, name: str) -> list[dict]:
        found = {j["id"]: j for j in self.jobs.values() if j["environment"] == name}
        for path in glob.glob(os.path.join(self.directory, "*.json")):
            record = self.record(os.path.basename(path)[:-5])
            if record and record["environment"] == name:
                found.setdefault(record["id"], record)
        return sorted(found.values(), key=lambda j: j["created"], reverse=True)

    def start(self, env: Environment) -> dict:
        """The export of ``env``'s image: finished, running, or started now. Private
        environments are never pushed to the shared registry."""
        export_id = env.image_id.split(":", 1)[-1]
        existing = self.get(export_id)
        if existing and existing["status"] in ("queued", "running", "done"):
            return existing
        commit = env.commit
        job = {
            "id": export_id, "environment": env.name, "image": env.image,
            "image_id": env.image_id, "commit": commit or None,
            "filename": f"{env.name}-{(commit or export_id)[:12]}.sif",
            "status": "queued", "step": "waiting for earlier exports", "steps": [],
            "progress": None,
            "error": None, "created": _now(), "finished": None, "size": None,
            "sha256": None, "pushed_to": None, "push": bool(self.push_registry and env.public),
            "registry_ref": (env.registry_ref or None) if self.registry else None,
        }
        self.jobs[export_id] = job
        self.tasks[export_id] = asyncio.create_task(self._run(job))
        return job

    async def _run(self, job: dict) -> None:
        export_id = job["id"]
        try:
            async with self.slots:
                job.update(status="running", step="starting")
                api = self.docker_api()
                await in_daemon_thread(self.prune, api)
                await in_daemon_thread(self._export, api, job)
            job.update(status="done", step="done", progress=1.0, finished=_now())
            self._write_record(export_id, job)
            self.log.info("export %s of %s is ready (%s bytes)", export_id[:12],
                          job["image"], job["size"])
        except ExportError as e:
            job.update(status="failed", error=str(e), finished=_now())
            self.log.warning("export of %s failed: %s", job["image"], e)
        except Exception as e:  # a bug or the engine going away: keep the service up
            job.update(status="failed", finished=_now(),
                       error="the export failed unexpectedly; the service log has details")
            self.log.exception("export of %s failed: %s", job["image"], e)
        finally:
            self.tasks.pop(export_id, None)

    def _export(self, api, job: dict) -> None:
        from .push import push_sif, sha256_file

        progress = JobProgress(job)
        converter = SifConverter(parent=self)
        if not converter.work_dir:
            converter.work_dir = self.work_dir
        out = self.sif_path(job["id"])
        if self.registry is not None and job.get("registry_ref"):
            pull_if_gone(api, job["image_id"], job["image"], job["registry_ref"],
                         self.registry.auth_config(), progress)
        image = converter.convert(api, job["image"], out, progress)
        if image.id != job["image_id"]:
            os.remove(out)
            raise ExportError(f"{job['image']} was rebuilt while it was exported; "
                              "export it again")
        job["size"] = os.path.getsize(out)
        progress.step("Checksumming the SIF", total=job["size"])
        job["sha256"] = sha256_file(out, progress).split(":", 1)[1]
        if job["push"]:
            tag = (job["commit"] or job["id"])[:12]
            target = parse_target(f"{self.push_registry.rstrip('/')}/{job['environment']}:{tag}")
            push_sif(out, target, progress)
            job["pushed_to"] = str(target)
            job["pull_command"] = target.pull_command()

    async def shutdown(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
