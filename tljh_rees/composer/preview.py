"""How repo2docker will build a spec: its own detection and Dockerfile, never our guess.

The files are written to a temporary directory and :mod:`.detect` runs repo2docker's
build packs on it in a subprocess. Build packs that ask the network while rendering (R's
CRAN snapshot, Julia's version list) report that as the render error; detection itself
is offline.

Any builder can ask for previews, and each is a Python process on a small machine, so a
few run at once, a few more wait their turn, and the rest are refused straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile

from traitlets import Int, List, Unicode
from traitlets.config import LoggingConfigurable

from .errors import SpecError

BUILDPACK_LABELS = {
    "DockerBuildPack": "your Dockerfile",
    "LegacyBinderDockerBuildPack": "a legacy Binder Dockerfile",
    "JuliaProjectTomlBuildPack": "Julia (Project.toml)",
    "JuliaRequireBuildPack": "Julia (REQUIRE)",
    "NixBuildPack": "Nix (default.nix)",
    "RBuildPack": "R (runtime.txt / DESCRIPTION)",
    "CondaBuildPack": "conda (environment.yml)",
    "PipfileBuildPack": "Python (Pipfile)",
    "PythonBuildPack": "Python (requirements.txt / setup.py, or repo2docker's default)",
}


class Previewer(LoggingConfigurable):
    base_image = Unicode("", config=True,
                         help="repo2docker's base image for previews; '' uses the builder's "
                              "or repo2docker's default.")
    user_name = Unicode("jovyan", config=True)
    user_id = Int(1000, config=True)
    timeout = Int(60, config=True, help="Seconds a preview may take; then its process "
                                        "group is killed.")
    max_running = Int(2, config=True, help="Previews running at once (each is a process).")
    max_waiting = Int(4, config=True, help="Previews that may wait for one of the running "
                                           "ones to finish; more are refused (503).")
    detect_command = List(Unicode(), [sys.executable, "-m", "tljh_rees.composer.detect"],
                          config=True, help="The command printing repo2docker's view of a "
                          "folder as JSON; the folder and --user-name, --user-id and "
                          "--base-image are appended.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._slots: asyncio.Semaphore | None = None  # made in the event loop, on first use
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def _turn(self):
        """Hold one of ``max_running`` slots, waiting in a queue of ``max_waiting`` at most."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_running)
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise SpecError("preview", f"{self.max_running} previews are running and "
                                       f"{self._waiting} waiting; try again in a minute",
                            status=503)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    async def _detect(self, directory: str) -> dict:
        cmd = [*self.detect_command, directory,
               "--user-name", self.user_name, "--user-id", str(self.user_id)]
        if self.base_image:
            cmd += ["--base-image", self.base_image]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            start_new_session=True,  # its own process group, killed whole below
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            return {"buildpack": None, "dockerfile": None, "messages": [], "stage": "detect",
                    "error": f"repo2docker took longer than {self.timeout}s to decide"}
        finally:
            await _kill_group(proc)
        try:
            result = json.loads(out)
        except ValueError:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
            return {"buildpack": None, "dockerfile": None, "messages": [], "stage": "detect",
                    "error": "repo2docker's detection failed: " + " ".join(tail)}
        result["buildpack_label"] = BUILDPACK_LABELS.get(result.get("buildpack"),
                                                         result.get("buildpack"))
        return result

    async def preview_files(self, write_files) -> dict:
        """``write_files(directory)`` puts the spec's files there; then preview them."""
        async with self._turn():
            with tempfile.TemporaryDirectory(prefix="rees-preview-") as directory:
                await asyncio.get_running_loop().run_in_executor(None, write_files, directory)
                return await self._detect(directory)


async def _kill_group(proc) -> None:
    """Kill what is left of the preview's process group (after a timeout or a cancelled
    request; also anything the command started and left behind), and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
