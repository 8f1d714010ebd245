"""Docker image → SIF file: with Apptainer when installed, else assembled from Debian tools."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time

import docker
from traitlets import CaselessStrEnum, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from .. import __version__
from .errors import ExportError, NoSpace
from .image import ImageInfo, export_rootfs, inspect_image
from .progress import Progress
from .sif import assemble_sif, atomic_output
from .singularity_d import SifMetadata, write_tree
from .tools import is_no_space, require, run

APPTAINER_COMMANDS = ("apptainer", "singularity")
UNPACK_SLACK = 64 * 1024**2  # headers, folders and small files Docker's size leaves out


class TooLarge(ExportError):
    """The image's filesystem grew past the unpacking limit (e.g. a sparse file)."""


class CappedExport:
    """A docker ``APIClient`` whose ``export`` stream stops with :class:`TooLarge` past
    ``limit`` bytes: the tar that unpacks it never writes more than that."""

    def __init__(self, api, limit: int, reference: str):
        self.api, self.limit, self.reference = api, limit, reference

    def __getattr__(self, name):
        return getattr(self.api, name)

    def export(self, *args, **kwargs):
        done = 0
        for chunk in self.api.export(*args, **kwargs):
            done += len(chunk)
            if done > self.limit:
                raise TooLarge(
                    f"the filesystem of {self.reference} unpacks to more than {self.limit} "
                    "bytes (the unpacking limit, c.SifConverter.max_unpack_bytes), far more "
                    "than its size says (sparse or duplicated files?); the export was "
                    "stopped and its files removed")
            yield chunk


def find_apptainer() -> str | None:
    for name in APPTAINER_COMMANDS:
        path = shutil.which(name)
        if path:
            return path
    return None


def remove_tree(path: str) -> None:
    """Remove an unpacked root filesystem, even its read-only directories."""
    def make_writable(func, failed, _exc):
        parent = os.path.dirname(failed)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        func(failed)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=make_writable)


class SifConverter(LoggingConfigurable):
    """Turns a local Docker image into a SIF file."""

    method = CaselessStrEnum(
        ["auto", "apptainer", "assemble"], "auto", config=True,
        help="'apptainer': `apptainer build … docker-daemon://…`; 'assemble': unpack the "
             "image and write the SIF with mksquashfs and siftool; 'auto': Apptainer when "
             "it is installed, else assemble.")
    work_dir = Unicode("", config=True,
                       help="Where the image's filesystem is unpacked while assembling "
                            "(needs about twice the image's size); '' for the system's "
                            "temporary directory.")
    mksquashfs_args = List(Unicode(), config=True,
                           help="Extra mksquashfs arguments, e.g. ['-comp', 'zstd'].")
    max_unpack_bytes = Int(
        0, config=True,
        help="Most bytes of an image's filesystem unpacked while assembling; more stops "
             "the export. 0: one and a half times the image's size plus 64 MiB, and never "
             "more than the work directory's free space less the image's size.")

    def chosen_method(self) -> str:
        if self.method != "auto":
            return self.method
        return "apptainer" if find_apptainer() else "assemble"

    def convert(self, api: docker.APIClient, reference: str, out: str,
                progress: Progress) -> ImageInfo:
        """Write the SIF of image ``reference`` to ``out``; return the image's details."""
        image = inspect_image(api, reference)
        if image.os != "linux":
            raise ExportError(f"{reference} is a {image.os} image; SIF needs a Linux image")
        if self.chosen_method() == "apptainer":
            self._apptainer_build(image, out, progress)
        else:
            self._assemble(api, image, out, progress)
        return image

    def unpack_limit(self, image: ImageInfo, work_dir: str) -> int:
        """Refuse to start without room for the unpacked image and its squashfs (twice
        its size) in ``work_dir``; the most bytes the unpacking may then write."""
        free = shutil.disk_usage(work_dir).free
        need = 2 * image.size
        if free < need:
            raise NoSpace(work_dir, f"unpacking {image.reference} needs about {need} bytes "
                                    f"free there, twice its size of {image.size} bytes; "
                                    f"{free} bytes are free")
        if self.max_unpack_bytes:
            return self.max_unpack_bytes
        return min(image.size + image.size // 2 + UNPACK_SLACK, free - image.size)

    def _apptainer_build(self, image: ImageInfo, out: str, progress: Progress) -> None:
        tool = find_apptainer()
        if tool is None:
            raise ExportError("neither 'apptainer' nor 'singularity' is installed; "
                              "install Apptainer or use the 'assemble' method")
        progress.step(f"Building the SIF with {os.path.basename(tool)}")
        source = image.reference if not image.reference.startswith("sha256:") else image.id
        with atomic_output(out) as tmp:
            run([tool, "build", tmp, f"docker-daemon://{source}"], what=f"{tool} build",
                writes=out, on_text=progress.note)

    def _assemble(self, api: docker.APIClient, image: ImageInfo, out: str,
                  progress: Progress) -> None:
        for tool in ("tar", "mksquashfs", "siftool"):
            require(tool)  # before the long export, not after it
        base = self.work_dir or None
        if base:
            os.makedirs(base, exist_ok=True)
        limit = self.unpack_limit(image, base or tempfile.gettempdir())
        try:
            work = tempfile.mkdtemp(prefix="rees-sif-", dir=base)
        except OSError as e:
            if is_no_space(e):
                raise NoSpace(base or tempfile.gettempdir()) from None
            raise
        try:
            root = os.path.join(work, "rootfs")
            os.mkdir(root)
            export_rootfs(CappedExport(api, limit, image.reference), image, root, progress)
            build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            metadata = SifMetadata.for_image(image, build_date, f"tljh-rees {__version__}")
            if metadata.skipped_env:
                progress.note("not valid as shell variables, left out of the environment: "
                              + ", ".join(metadata.skipped_env))
            try:
                write_tree(root, metadata)
            except OSError as e:
                if is_no_space(e):
                    raise NoSpace(root) from None
                raise
            assemble_sif(root, metadata, image.architecture, out, work, progress,
                         tuple(self.mksquashfs_args))
        finally:
            remove_tree(work)
