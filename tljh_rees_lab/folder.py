"""What of a folder goes to the service: its files minus what git would ignore.

The rules of ``.gitignore`` files (the folder's own and those below it) are applied as git
applies them, for the forms people write: names at any depth (``*.csv``), paths anchored
to the ignore file's folder (``/data``, ``a/b``), folders only (``build/``), ``**`` and
negation (``!keep.csv``). Caches Jupyter and Python make are always left out, and so are
links (a link could point anywhere on the server). Files over the service's size limits
are listed, not sent.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile

ALWAYS_LEFT_OUT = (".git", ".ipynb_checkpoints", "__pycache__", ".virtual_documents")
LISTED_AT_MOST = 50  # names of left-out files shown to the user


class FolderError(Exception):
    """A folder that cannot be sent, with what to do about it."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _pattern_regex(pattern):
    """A .gitignore pattern (without ``!`` or a trailing ``/``) as a regex over paths
    relative to the ignore file's folder."""
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.lstrip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body + "]")
                i = end + 1
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(prefix + "".join(out) + "$")


class IgnoreRules:
    """The rules of the ``.gitignore`` files met so far, each tied to its folder."""

    def __init__(self):
        self.rules = []  # (folder, regex, negated, folders_only)

    def read(self, folder, text):
        for line in text.splitlines():
            line = line.rstrip()
            if line.endswith("\\"):
                line += " "
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            folders_only = line.endswith("/")
            line = line.rstrip("/")
            if line:
                self.rules.append((folder, _pattern_regex(line), negated, folders_only))

    def ignored(self, path, is_folder):
        """Whether ``path`` (relative to the chosen folder, with ``/``) is ignored: the
        last matching rule decides, as in git."""
        result = False
        for folder, regex, negated, folders_only in self.rules:
            if folders_only and not is_folder:
                continue
            if folder and not path.startswith(folder + "/"):
                continue
            relative = path[len(folder) + 1:] if folder else path
            if regex.match(relative):
                result = not negated
        return result


class Collected:
    def __init__(self):
        self.files = []  # (relative path, size, executable)
        self.ignored = []  # relative paths, folders end with "/"
        self.too_large = []  # (relative path, size)
        self.links = []

    @property
    def total_bytes(self):
        return sum(size for _, size, _ in self.files)

    def summary(self):
        return {
            "files": len(self.files),
            "bytes": self.total_bytes,
            "paths": [p for p, _, _ in self.files][:LISTED_AT_MOST],
            "ignored": self.ignored[:LISTED_AT_MOST],
            "ignored_count": len(self.ignored),
            "too_large": [{"path": p, "bytes": s} for p, s in self.too_large[:LISTED_AT_MOST]],
            "links": self.links[:LISTED_AT_MOST],
            "always_left_out": list(ALWAYS_LEFT_OUT),
        }


def collect(root, max_file_bytes, max_files=None):
    """The files of the folder ``root`` that go to the service; a folder with more than
    ``max_files`` stops the walk there (a home folder chosen by mistake is not read
    whole)."""
    found = Collected()
    rules = IgnoreRules()

    def walk(relative):
        full = os.path.join(root, relative) if relative else root
        try:
            names = sorted(os.listdir(full))
        except OSError as e:
            raise FolderError("cannot read the folder {!r}: {}".format(relative or ".", e))
        if ".gitignore" in names:
            try:
                with open(os.path.join(full, ".gitignore"), encoding="utf-8",
                          errors="replace") as f:
                    rules.read(relative, f.read())
            except OSError:
                pass
        for name in names:
            path = relative + "/" + name if relative else name
            info = os.lstat(os.path.join(full, name))
            if stat.S_ISLNK(info.st_mode):
                found.links.append(path)
                continue
            is_folder = stat.S_ISDIR(info.st_mode)
            if name in ALWAYS_LEFT_OUT:
                continue
            if rules.ignored(path, is_folder):
                found.ignored.append(path + "/" if is_folder else path)
                continue
            if is_folder:
                walk(path)
            elif stat.S_ISREG(info.st_mode):
                if info.st_size > max_file_bytes:
                    found.too_large.append((path, info.st_size))
                else:
                    found.files.append((path, info.st_size, bool(info.st_mode & 0o111)))
                    if max_files is not None and len(found.files) > max_files:
                        raise FolderError(
                            "the folder has more than {} files, the most the service takes. "
                            "Choose a smaller folder, or list data and outputs in a "
                            ".gitignore.".format(max_files), status=413)

    walk("")
    return found


def zip_files(root, collected):
    """The collected files as a zip, executable bits kept (postBuild, start)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, _, executable in collected.files:
            info = zipfile.ZipInfo(path)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            with open(os.path.join(root, path), "rb") as f:
                archive.writestr(info, f.read())
    return buffer.getvalue()


def check_limits(collected, limits):
    """Refuse a folder over the service's limits before sending it, saying what to do."""
    if not collected.files:
        raise FolderError("the folder has no files to send (all are ignored, too large or "
                          "links)")
    if len(collected.files) > limits["max_files"]:
        raise FolderError("the folder has {} files; the service takes at most {}. List "
                          "data and outputs in a .gitignore.".format(
                              len(collected.files), limits["max_files"]), status=413)
    if collected.total_bytes > limits["max_total_bytes"]:
        raise FolderError("the folder's files add up to {} bytes; the service takes at most "
                          "{}. List large data in a .gitignore.".format(
                              collected.total_bytes, limits["max_total_bytes"]), status=413)
