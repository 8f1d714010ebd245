"""Imports: a zip or an uploaded folder becomes a spec's files, or a clear refusal.

Refused: paths that leave the spec (zip-slip: ``..``, absolute, drive letters), ``.git``
folders, symbolic links and other non-regular entries, encrypted entries, duplicates, and
anything over the store's limits — checked on the decompressed bytes actually read, so
a zip cannot lie about its sizes.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass, field

from .errors import SpecError
from .paths import clean_path, strip_common_folder


@dataclass
class Limits:
    max_files: int
    max_file_bytes: int
    max_total_bytes: int


@dataclass
class Imported:
    files: dict[str, bytes] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)


def _finish(entries: list[tuple[str, bytes, bool]]) -> Imported:
    if not entries:
        raise SpecError("file", "nothing to import: no files found")
    folder = strip_common_folder([p for p, _, _ in entries])
    result = Imported()
    for path, content, executable in entries:
        if folder:
            path = path[len(folder) + 1:]
        if path in result.files:
            raise SpecError("file", f"{path} appears twice")
        result.files[path] = content
        if executable:
            result.executable.add(path)
    return result


class _Budget:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.total = 0
        self.count = 0

    def add(self, path: str, size: int) -> None:
        self.count += 1
        self.total += size
        if self.count > self.limits.max_files:
            raise SpecError("file", f"more than {self.limits.max_files} files", 413)
        if size > self.limits.max_file_bytes:
            raise SpecError("file", f"{path} is larger than {self.limits.max_file_bytes} "
                                    "bytes", 413)
        if self.total > self.limits.max_total_bytes:
            raise SpecError("file", f"the files total more than "
                                    f"{self.limits.max_total_bytes} bytes", 413)


def read_zip(data: bytes, limits: Limits) -> Imported:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise SpecError("file", "not a zip file") from None
    budget = _Budget(limits)
    entries = []
    with archive:
        for info in archive.infolist():
            name = info.filename
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise SpecError("file", f"{name}: symbolic links are not allowed in an import")
            if info.is_dir() or stat.S_ISDIR(mode):
                clean_path(name, "file")  # a '../' folder is refused like a file
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                raise SpecError("file", f"{name}: only regular files can be imported")
            if info.flag_bits & 0x1:
                raise SpecError("file", f"{name}: encrypted zip entries are not supported")
            path = clean_path(name, "file")
            budget.add(path, info.file_size)
            try:
                with archive.open(info) as f:
                    content = f.read(limits.max_file_bytes + 1)
            except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as e:
                raise SpecError("file", f"{path}: cannot be read from the zip ({e})") from None
            if len(content) != info.file_size:
                raise SpecError("file", f"{path}: its size in the zip does not match its "
                                        "content")
            entries.append((path, content, bool(mode & 0o111)))
    return _finish(entries)


def read_folder(uploads: list[tuple[str, bytes]], limits: Limits) -> Imported:
    """Files a browser sent from a chosen folder, as (relative path, content)."""
    budget = _Budget(limits)
    entries = []
    for name, content in uploads:
        path = clean_path(name, "file")
        budget.add(path, len(content))
        entries.append((path, content, False))
    return _finish(entries)
