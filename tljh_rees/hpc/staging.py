"""An environment's image where the cluster's nodes can run it, made once per image.

The image is exported as SIF (``export/convert.py``, as ``tljh-rees build`` does) into
``rees.hpc.image_dir``, named by its content-addressed id, so a rebuilt environment gets
a new file and an unchanged one is reused. Apptainer runs the SIF itself. Charliecloud's
``ch-run`` (Debian 12: 0.31) cannot read SIF: it gets the SIF's squashfs partition, either
as a ``.sqfs`` file (mounted by squashfuse on the node; needs /dev/fuse usable by the
job's user) or unpacked to a directory with ``unsquashfs`` (needs nothing else: the
default, since this VM's /dev/fuse is root's only). Each form is written under a
temporary name and renamed, under a per-image lock, so concurrent launches of the same
image wait for one export.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from ..export.convert import SifConverter, remove_tree
from ..export.progress import Progress
from ..export.sif import atomic_output
from ..export.tools import require

SQUASHFS_TYPES = ("Squashfs", "FS")


@dataclass(frozen=True)
class StagedImage:
    path: str  # what the runtime is given: a SIF, a .sqfs file or a directory
    sif: str
    cached: bool  # nothing had to be made


class NoteProgress(Progress):
    """Export steps as one-line notes (the spawner shows them on the Hub's page)."""

    def __init__(self, note: Callable[[str], None]):
        super().__init__()
        self._note = note

    def step(self, name, total=None, unit="bytes"):
        super().step(name, total, unit)
        self._note(name)


def image_key(image_id: str) -> str:
    """A file name from a Docker image id (``sha256:abc…`` → ``abc…``, 16 hex digits)."""
    digest = image_id.split(":", 1)[-1]
    if not digest or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a content-addressed image id: {image_id!r}")
    return digest[:16]


def squashfs_range(sif: str) -> tuple[int, int]:
    """Start and end of the SIF's root filesystem partition, from ``siftool list``."""
    out = subprocess.run(["siftool", "list", sif], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 5 and cells[0].isdigit() and any(t in cells[4] for t in SQUASHFS_TYPES):
            start, end = cells[3].split("-")
            return int(start), int(end)
    raise RuntimeError(f"{sif} has no squashfs partition (siftool list:\n{out})")


class ImageStager:
    """``stage(api, image_id, note)`` → :class:`StagedImage` for ``runtime``."""

    def __init__(self, image_dir: str, runtime: str, charliecloud_format: str = "directory",
                 converter: SifConverter | None = None):
        self.image_dir, self.runtime = image_dir, runtime
        self.charliecloud_format = charliecloud_format
        self.converter = converter or SifConverter()

    def paths(self, image_id: str) -> tuple[str, str]:
        """(SIF path, the runtime's path) of an image."""
        base = os.path.join(self.image_dir, image_key(image_id))
        if self.runtime == "apptainer":
            return base + ".sif", base + ".sif"
        suffix = ".sqfs" if self.charliecloud_format == "squashfs" else ".d"
        return base + ".sif", base + suffix

    def stage(self, api, image_id: str, note: Callable[[str], None]) -> StagedImage:
        os.makedirs(self.image_dir, mode=0o755, exist_ok=True)
        sif, path = self.paths(image_id)
        if os.path.exists(path):
            return StagedImage(path, sif, cached=True)
        with self._lock(image_id):
            if os.path.exists(path):  # another launch made it meanwhile
                return StagedImage(path, sif, cached=True)
            if not os.path.exists(sif):
                note("Exporting the environment's image as SIF for the cluster")
                self.converter.convert(api, image_id, sif, NoteProgress(note))
            os.chmod(sif, 0o644)
            if path != sif:
                self._unpack(sif, path, note)
        return StagedImage(path, sif, cached=False)

    @contextmanager
    def _lock(self, image_id: str):
        lock = os.path.join(self.image_dir, f".{image_key(image_id)}.lock")
        with open(lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _unpack(self, sif: str, path: str, note: Callable[[str], None]) -> None:
        start, end = squashfs_range(sif)
        if path.endswith(".sqfs"):
            note("Taking the squashfs partition out of the SIF")
            with atomic_output(path) as tmp, open(sif, "rb") as src, open(tmp, "wb") as dst:
                src.seek(start)
                _copy(src, dst, end - start)
            os.chmod(path, 0o644)
            return
        require("unsquashfs")
        note("Unpacking the image for ch-run (unsquashfs)")
        tmp = f"{path}.part-{os.getpid()}"
        remove_tree(tmp)
        try:
            subprocess.run(["unsquashfs", "-q", "-n", "-o", str(start), "-d", tmp, sif],
                           check=True, capture_output=True, text=True)
            os.chmod(tmp, 0o755)
            os.rename(tmp, path)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"unsquashfs of {sif} failed: {e.stderr.strip()[-500:]}") from None
        finally:
            remove_tree(tmp)


def _copy(src, dst, size: int) -> None:
    left = size
    while left > 0:
        chunk = src.read(min(left, 1 << 20))
        if not chunk:
            raise RuntimeError("the SIF ended inside its squashfs partition")
        dst.write(chunk)
        left -= len(chunk)

