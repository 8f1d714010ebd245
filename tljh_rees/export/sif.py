"""Assemble a SIF file from a root filesystem with mksquashfs and siftool.

The layout follows what Apptainer writes for a build: a definition file, the inspect
metadata and OCI config as JSON objects, and the squashfs root as the primary system
partition, all in object group 1, each object aligned to 4 KiB, and the launch line
``#!/usr/bin/env run-singularity`` at the head of the file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from contextlib import contextmanager

from .errors import ExportError, NoSpace
from .progress import Progress
from .singularity_d import LAUNCH_SCRIPT, SifMetadata
from .tools import is_no_space, require, run

# siftool's numbers for data types, partition kinds and architectures.
DATATYPE_DEFFILE = 1
DATATYPE_PARTITION = 4
DATATYPE_GENERIC_JSON = 6
PARTTYPE_PRIMSYS = 2
PARTFS_SQUASH = 1
ARCHITECTURES = {"386": 1, "amd64": 2, "arm": 3, "arm64": 4, "ppc64": 5, "ppc64le": 6,
                 "mips": 7, "mipsle": 8, "mips64": 9, "mips64le": 10, "s390x": 11,
                 "riscv64": 12}
GROUP = 1
ALIGNMENT = 4096
HEADER_LAUNCH_SIZE = 32
SIF_MAGIC = b"SIF_MAGIC\0"
_PROGRESS = re.compile(r"(\d+)/(\d+)\s+(\d+)%")


def squashfs(root: str, dest: str, progress: Progress,
             extra_args: tuple[str, ...] = ()) -> None:
    """``mksquashfs root dest``, reporting its progress bar as a step."""
    progress.step("Making the squashfs root filesystem (mksquashfs)", total=100,
                  unit="percent")
    args = ["mksquashfs", root, dest, "-noappend", *extra_args]
    if os.geteuid() != 0:
        args.append("-all-root")  # unprivileged unpacking made every file ours

    def on_text(text: str) -> None:
        m = _PROGRESS.search(text)
        if m:
            progress.advance(int(m.group(3)))

    run(args, what="mksquashfs", writes=dest, on_text=on_text)
    progress.advance(100)


@contextmanager
def atomic_output(path: str):
    """A temporary name beside ``path``, renamed to ``path`` only if the block succeeds.

    On any error (a full disk included) the temporary file is removed, so nothing is
    ever left under the final name.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise ExportError(f"the directory of {path} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part",
                               dir=directory)
    os.close(fd)
    os.remove(tmp)  # siftool refuses to create over an existing file
    try:
        yield tmp
        os.chmod(tmp, 0o755 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if is_no_space(e):
            raise NoSpace(path) from None
        raise
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def _umask() -> int:
    """The process's umask, read without changing it (other threads may create files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


@contextmanager
def _watch_size(path: str, progress: Progress):
    """Report the growth of ``path`` while a tool writes it without progress of its own."""
    stop = threading.Event()

    def watch():
        while not stop.wait(0.5):
            try:
                progress.advance(os.path.getsize(path))
            except OSError:
                pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def write_launch_script(path: str, script: str = LAUNCH_SCRIPT) -> None:
    """Put the launch line in the SIF header (siftool has no option for it)."""
    data = script.encode()
    if len(data) >= HEADER_LAUNCH_SIZE:
        raise ValueError("the launch script must be shorter than 32 bytes")
    with open(path, "r+b") as f:
        header = f.read(HEADER_LAUNCH_SIZE + len(SIF_MAGIC))
        if header[HEADER_LAUNCH_SIZE:] != SIF_MAGIC:
            raise ExportError(f"{path} is not a SIF file (no SIF magic in its header)")
        f.seek(0)
        f.write(data.ljust(HEADER_LAUNCH_SIZE, b"\0"))


def assemble_sif(root: str, metadata: SifMetadata, architecture: str, out: str,
                 work_dir: str, progress: Progress,
                 mksquashfs_args: tuple[str, ...] = ()) -> None:
    """Write the SIF of the prepared root filesystem ``root`` to ``out`` (atomically)."""
    require("mksquashfs")
    require("siftool")
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        raise ExportError(f"cannot make a SIF for the architecture {architecture!r}; "
                          f"known: {', '.join(ARCHITECTURES)}")
    fd, partition = tempfile.mkstemp(prefix="squashfs-", dir=work_dir)
    os.close(fd)
    try:
        squashfs(root, partition, progress, mksquashfs_args)
        objects = _write_objects(metadata, work_dir)
        with atomic_output(out) as tmp:
            progress.step("Writing the SIF file (siftool)", total=os.path.getsize(partition))
            run(["siftool", "new", tmp], what="siftool new", writes=out)
            for path, datatype, name in objects:
                _add(tmp, path, out, ["--datatype", str(datatype), "--filename", name])
            with _watch_size(tmp, progress):
                _add(tmp, partition, out, [
                    "--datatype", str(DATATYPE_PARTITION), "--parttype", str(PARTTYPE_PRIMSYS),
                    "--partfs", str(PARTFS_SQUASH), "--partarch", str(arch),
                    "--filename", os.path.basename(partition)])
            write_launch_script(tmp)
            progress.advance(progress.total or 0)
    finally:
        os.remove(partition)


def _add(sif: str, path: str, out: str, args: list[str]) -> None:
    run(["siftool", "add", "--groupid", str(GROUP), "--alignment", str(ALIGNMENT), *args,
         sif, path], what="siftool add", writes=out)


def _write_objects(metadata: SifMetadata, work_dir: str) -> list[tuple[str, int, str]]:
    """The small objects as files: (path, siftool data type, name in the SIF)."""
    objects = [
        ("deffile", DATATYPE_DEFFILE, ".", metadata.deffile),
        ("inspect-metadata.json", DATATYPE_GENERIC_JSON, "inspect-metadata.json",
         json.dumps(metadata.inspect_metadata())),
        ("oci-config.json", DATATYPE_GENERIC_JSON, "oci-config.json",
         json.dumps(metadata.oci_config)),
    ]
    written = []
    for filename, datatype, name, content in objects:
        path = os.path.join(work_dir, filename)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        written.append((path, datatype, name))
    return written
