"""Copy an environment's repository files out of its image without running it.

The image is never started: a container is created (not run), the repository folder is
read with ``get_archive`` as a tar stream, and the container is removed. Only the files
the gallery shows are kept: notebooks, the README, dependency files and small images.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from dataclasses import dataclass, field

from docker.errors import NotFound

from .. import LABEL_PREFIX

EXTRACT_LABEL = LABEL_PREFIX + "gallery-extract"
README_NAMES = ("readme.md", "readme.markdown", "readme.rst", "readme.txt", "readme")
# The files repo2docker reads (at the top or in binder/ or .binder/) that name packages.
DEPENDENCY_FILES = ("requirements.txt", "environment.yml", "environment.yaml", "apt.txt",
                    "install.R")
CONFIG_DIRS = ("", "binder", ".binder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")


@dataclass(frozen=True)
class ImagePlaces:
    """Where things are inside an image, from its config."""

    repo_dir: str      # the repository's files
    server_root: str   # the folder a started server shows (its working directory)

    @classmethod
    def from_inspect(cls, info: dict) -> "ImagePlaces":
        config = info.get("Config") or {}
        env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        home = env.get("HOME") or "/"
        workdir = config.get("WorkingDir") or ""
        return cls(repo_dir=env.get("REPO_DIR") or workdir or home,
                   server_root=workdir or home)

    def server_path(self, repo_path: str) -> str | None:
        """A repository file's path as the started server sees it (None: outside its root)."""
        full = posixpath.join(self.repo_dir, repo_path)
        rel = posixpath.relpath(full, self.server_root)
        return None if rel == ".." or rel.startswith("../") else rel


@dataclass(frozen=True)
class Limits:
    max_notebook_bytes: int
    max_notebooks: int
    max_file_bytes: int
    max_scan_bytes: int


@dataclass
class Extracted:
    """What was found in the repository folder (paths are relative to it)."""

    notebooks: dict[str, int] = field(default_factory=dict)  # path -> size
    stored: set[str] = field(default_factory=set)             # paths written to disk
    notebooks_truncated: bool = False
    scan_truncated: bool = False


def safe_relpath(name: str) -> str | None:
    """A tar member name below the archive's top folder, or None if it must be ignored."""
    parts = name.split("/", 1)
    if len(parts) < 2 or not parts[1] or "\0" in name:
        return None
    rel = posixpath.normpath(parts[1])
    if rel.startswith("/") or rel == "." or ".." in rel.split("/"):
        return None
    return rel


def kind_of(rel: str) -> str | None:
    """Which kind of gallery file a repository path is: notebook, readme, dependency, image."""
    parts = rel.split("/")
    name = parts[-1]
    lower = name.lower()
    folder = "/".join(parts[:-1])
    if folder in CONFIG_DIRS and name in DEPENDENCY_FILES:
        return "dependency"
    if any(p.startswith(".") for p in parts):
        return None  # hidden folders (.git, .cache, .ipynb_checkpoints, ...) are not shown
    if lower.endswith(".ipynb"):
        return "notebook"
    if not folder and lower in README_NAMES:
        return "readme"
    if lower.endswith(IMAGE_EXTENSIONS):
        return "image"
    return None


class _CountingStream(io.RawIOBase):
    """A readable file over the chunks ``get_archive`` yields, counting bytes read."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self.bytes_read += n
        return n


def _keep(kind: str, size: int, limits: Limits) -> bool:
    limit = limits.max_notebook_bytes if kind == "notebook" else limits.max_file_bytes
    return size <= limit


def read_tar(stream, dest: str, limits: Limits) -> Extracted:
    """Write the gallery's files from a tar stream of the repository folder into ``dest``."""
    found = Extracted()
    counted = _CountingStream(stream)
    with tarfile.open(fileobj=io.BufferedReader(counted, 1024 * 1024), mode="r|") as tar:
        for member in tar:
            if counted.bytes_read > limits.max_scan_bytes:
                found.scan_truncated = True
                break
            rel = safe_relpath(member.name)
            if rel is None or not member.isfile():
                continue  # symlinks, devices and folders are never followed or written
            kind = kind_of(rel)
            if kind is None:
                continue
            if kind == "notebook":
                if len(found.notebooks) >= limits.max_notebooks:
                    found.notebooks_truncated = True
                    continue
                found.notebooks[rel] = member.size
            if not _keep(kind, member.size, limits):
                continue
            target = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            source = tar.extractfile(member)
            with open(target, "wb") as out:
                while True:
                    chunk = source.read(1024 * 1024)
                    if not chunk:
                        break
                    out.write(chunk)
            found.stored.add(rel)
    return found


def extract_repository(api, image: str, dest: str, limits: Limits) -> tuple[ImagePlaces,
                                                                            Extracted]:
    """Copy the gallery's files of ``image`` into ``dest`` (a docker ``APIClient``)."""
    places = ImagePlaces.from_inspect(api.inspect_image(image))
    container = api.create_container(image, command=["true"], network_disabled=True,
                                     labels={EXTRACT_LABEL: "1"})
    try:
        try:
            stream, _stat = api.get_archive(container["Id"], places.repo_dir)
        except NotFound:
            return places, Extracted()  # no such folder in the image: nothing to show
        try:
            found = read_tar(stream, dest, limits)
        finally:
            stream.close()
    finally:
        api.remove_container(container["Id"], force=True)
    return places, found
