"""How repo2docker will build a spec: its own detection and Dockerfile, never our guess.

The files are written to a temporary directory and :mod:`.detect` runs repo2docker's
build packs on it in a subprocess. Build packs that ask the network while rendering (R's
CRAN snapshot, Julia's version list) report that as the render error; detection itself
is offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile

from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable

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
    timeout = Int(60, config=True, help="Seconds a preview may take.")

    async def preview_dir(self, directory: str) -> dict:
        cmd = [sys.executable, "-m", "tljh_rees.composer.detect", directory,
               "--user-name", self.user_name, "--user-id", str(self.user_id)]
        if self.base_image:
            cmd += ["--base-image", self.base_image]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return {"buildpack": None, "dockerfile": None, "messages": [], "stage": "detect",
                    "error": f"repo2docker took longer than {self.timeout}s to decide"}
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
        with tempfile.TemporaryDirectory(prefix="rees-preview-") as directory:
            await asyncio.get_running_loop().run_in_executor(None, write_files, directory)
            return await self.preview_dir(directory)
