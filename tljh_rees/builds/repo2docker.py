"""Run repo2docker as a subprocess and turn its JSON log into lines and phases.

The service's default :class:`~tljh_rees.builds.builder.Builder`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from typing import AsyncIterator, Callable

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

    async def build(self, source_dir: str, image: str, labels: dict,
                    on_line: Callable[[str], None],
                    on_process: Callable[[asyncio.subprocess.Process], None] = lambda p: None,
                    ) -> None:
        """Build ``source_dir`` into ``image``; raise BuildFailed with the reason."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="rees-r2d-",
                                         delete=False) as f:
            json.dump(self.r2d_config(labels), f)
            config_file = f.name
        try:
            cmd = [*(self.command or self._command_default()),
                   "--config", config_file, "--json-logs", "--no-run",
                   "--user-id", str(self.user_id), "--user-name", self.user_name,
                   "--image-name", image, *self.extra_args, source_dir]
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
