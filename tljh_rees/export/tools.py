"""The command-line tools the export runs, and how to run them.

Every tool is looked up before use so a missing one is reported with the Debian/Ubuntu
package that provides it, and a full disk is reported as such, not as a tool's exit code.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections import deque
from typing import Callable

from .errors import ExportError, MissingTool, NoSpace

PACKAGES = {
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "siftool": "siftool",
    "tar": "tar",
    "skopeo": "skopeo",
    "ch-run": "charliecloud-runtime",
    "docker-registry": "docker-registry",
}

NO_SPACE = re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|short write|"
                      r"Wrote only \d+ of \d+ bytes",
                      re.IGNORECASE)
_LINE_BREAK = re.compile(rb"[\r\n]")


def require(tool: str) -> str:
    """The path of ``tool``, or MissingTool naming the package to install."""
    path = shutil.which(tool)
    if not path:
        raise MissingTool(tool, PACKAGES.get(tool, tool))
    return path


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def run(cmd: list[str], *, what: str, writes: str, on_text: Callable[[str], None] | None = None,
        env: dict | None = None) -> str:
    """Run ``cmd``; each piece of output (split at CR or LF) goes to ``on_text``.

    ``writes`` is the file or directory the command writes, named in a disk-full error.
    Returns the output; raises NoSpace or ExportError with the command's last words.
    """
    require(cmd[0])
    tail: deque[str] = deque(maxlen=30)
    output: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    pending = b""
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        pieces = _LINE_BREAK.split(pending + chunk)
        pending = pieces.pop()
        for piece in pieces:
            _emit(piece, tail, output, on_text)
    _emit(pending, tail, output, on_text)
    proc.stdout.close()
    code = proc.wait()
    text = "\n".join(output)
    if code != 0:
        # Go tools (siftool) print "Error: …" first and their usage after it.
        errors = [line for line in output if line.startswith("Error:")]
        raise_for_failure(what, code, "\n".join([*errors, *tail]), writes)
    return text


def _emit(piece: bytes, tail: deque, output: list, on_text) -> None:
    text = piece.decode("utf-8", "replace").strip()
    if not text:
        return
    tail.append(text)
    if len(output) < 10000:
        output.append(text)
    if on_text:
        on_text(text)


def raise_for_failure(what: str, code: int, tail: str, writes: str):
    if NO_SPACE.search(tail):
        raise NoSpace(writes)
    lines = [line for line in tail.splitlines() if line.strip()]
    last = [line for line in lines if line.startswith("Error:")][:1] or lines[-3:]
    detail = "; ".join(last) if last else f"exit code {code}"
    raise ExportError(f"{what} failed: {detail}")
