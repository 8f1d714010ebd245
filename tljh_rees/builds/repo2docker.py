"""Run repo2docker as a subprocess and turn its JSON log into lines and phases.

The service's default :class:`~tljh_rees.builds.builder.Builder`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import tempfile
from typing import AsyncIterator, Callable, Sequence

from traitlets import Dict, Int, List, Unicode

from .builder import BuildFailed, Builder


class Repo2DockerBuilder(Builder):
    """Builds a checked-out REES repository into an image with repo2docker."""

    base_image = Unicode("", config=True,
                         help="repo2docker's base image (Repo2Docker.base_image); '' keeps "
                              "repo2docker's default.")
    build_args = Dict(config=True, help="Extra build arguments for every build.")
    user_id = Int(1000, config=True)
    user_name = Unicode("jovyan", config=True)
    extra_args = List(Unicode(), config=True, help="More repo2docker command-line arguments.")
    command = List(Unicode(), config=True, help="How to run repo2docker.")
    max_line_bytes = Int(64 * 1024, config=True,
                         help="Longer output lines are cut to this many bytes (with a note), "
                              "so one huge line can neither stop a build nor fill its log.")

    def _command_default(self):
        return [sys.executable, "-m", "repo2docker"]

    def r2d_config(self, labels: dict) -> dict:
        """repo2docker's traitlets config, passed as a file (never on the command line)."""
        config = {"labels": labels, "extra_build_args": dict(self.build_args)}
        if self.base_image:
            config["base_image"] = self.base_image
        return {"Repo2Docker": config}

    def argv(self, source_dir: str, image: str, config_file: str,
             client_packages: Sequence[str] = ()) -> list[str]:
        """repo2docker's command line; with ``client_packages`` (of the add-on services
        the repository declares) an ``--appendix`` installing them, unless the repository
        is built from its own Dockerfile (repo2docker adds no appendix to those)."""
        appendix = client_appendix(client_packages) \
            if client_packages and not uses_dockerfile(source_dir) else ""
        return [*(self.command or self._command_default()),
                "--config", config_file, "--json-logs", "--no-run",
                "--user-id", str(self.user_id), "--user-name", self.user_name,
                "--image-name", image, *(["--appendix", appendix] if appendix else []),
                *self.extra_args, source_dir]

    async def build(self, source_dir: str, image: str, labels: dict,
                    on_line: Callable[[str], None],
                    on_process: Callable[[asyncio.subprocess.Process], None] = lambda p: None,
                    client_packages: Sequence[str] = (),
                    ) -> None:
        """Build ``source_dir`` into ``image``; raise BuildFailed with the reason."""
        if client_packages and uses_dockerfile(source_dir):
            on_line("services: this repository builds from its own Dockerfile, which must "
                    "install the services' client packages itself (for example "
                    f"{' '.join(client_packages)})\n")
        elif client_packages:
            on_line(f"services: installing their client packages: "
                    f"{', '.join(client_packages)}\n")
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="rees-r2d-",
                                         delete=False) as f:
            json.dump(self.r2d_config(labels), f)
            config_file = f.name
        try:
            cmd = self.argv(source_dir, image, config_file, client_packages)
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                on_process(proc)
                failure = ""
                async for raw in read_lines(proc.stdout, self.max_line_bytes):
                    text, phase = parse_log_line(raw)
                    if phase == "failed":
                        failure = text.strip() or failure
                    if text:
                        on_line(text)
                code = await proc.wait()
            except BaseException:  # cancelled, or a reader/on_line failure: leave no orphan
                await stop_and_wait(proc)
                raise
        finally:
            os.unlink(config_file)
        if code != 0:
            if code < 0:
                raise BuildFailed(f"repo2docker was stopped by signal {-code}")
            raise BuildFailed(failure or f"repo2docker exited with code {code}")


def client_appendix(packages: Sequence[str]) -> str:
    """The Dockerfile lines repo2docker appends to a build pack's: pip-install
    ``packages`` into the environment the kernel runs in (as the notebook user, as
    repo2docker leaves the image)."""
    requirements = " ".join(shlex.quote(p) for p in packages)
    return ('RUN "${KERNEL_PYTHON_PREFIX:-${NB_PYTHON_PREFIX}}/bin/python" -m pip install '
            f"--no-cache-dir {requirements}")


def uses_dockerfile(source_dir: str) -> bool:
    """Whether repo2docker builds ``source_dir`` from a Dockerfile: one in its
    configuration folder (``.binder`` or ``binder`` when there is one, else the root)."""
    folder = next((d for d in (".binder", "binder")
                   if os.path.isdir(os.path.join(source_dir, d))), "")
    return os.path.isfile(os.path.join(source_dir, folder, "Dockerfile"))


async def read_lines(stream: asyncio.StreamReader, limit: int,
                     chunk: int = 64 * 1024) -> AsyncIterator[str]:
    """The stream's lines, each cut to ``limit`` bytes with a note of its full size.

    Read in chunks and split here: StreamReader's own line reading raises on a line over
    its limit, which would stop the build and leave repo2docker blocked on a full pipe.
    Memory stays under ``limit + chunk`` whatever the child writes.
    """
    buf, dropped = b"", 0  # dropped: bytes of the current line already thrown away
    while True:
        data = await stream.read(chunk)
        if not data:
            break
        *lines, buf = (buf + data).split(b"\n")
        for line in lines:
            yield _cut(line, dropped + len(line), limit) + "\n"
            dropped = 0
        if len(buf) > limit:
            dropped += len(buf) - limit
            buf = buf[:limit]
    if buf or dropped:
        yield _cut(buf, dropped + len(buf), limit) + "\n"


def _cut(line: bytes, size: int, limit: int) -> str:
    text = line[:limit].decode("utf-8", "replace")
    if size <= limit:
        return text
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
    return f"{text} [line cut: {shown}]"


def parse_log_line(raw: str) -> tuple[str, str]:
    """(text, phase) from one line of repo2docker's JSON log (plain lines pass through)."""
    raw = raw.rstrip("\n")
    try:
        record = json.loads(raw)
    except ValueError:
        return raw + "\n", ""
    if not isinstance(record, dict):
        return raw + "\n", ""
    text = record.get("message", "")
    if not text.endswith("\n"):
        text += "\n"
    return text, record.get("phase", "")


def stop_process_group(proc: asyncio.subprocess.Process,
                       sig: int = signal.SIGTERM) -> None:
    """Stop repo2docker and its docker buildx child (BuildKit cancels the build)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


async def stop_and_wait(proc: asyncio.subprocess.Process, grace: float = 10) -> None:
    """Stop the process group and reap its leader; SIGKILL the group if it outlives ``grace``."""
    stop_process_group(proc)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except asyncio.TimeoutError:
        stop_process_group(proc, signal.SIGKILL)
        await proc.wait()
