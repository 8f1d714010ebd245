"""Rules for names and file paths that come from users (API bodies, zips, folders)."""

from __future__ import annotations

import re

from .errors import SpecError
from .sections import CONFIG_DIRS

# The spec name is also the default environment (image) name: same rule as the builder's.
SPEC_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
SPEC_NAME_MAX = 63
PATH_MAX = 1024
RESERVED = {"validate", "preview", "import"}  # API paths beside the specs' names


def check_spec_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise SpecError("name", "expected a spec name like my-analysis")
    if len(name) > SPEC_NAME_MAX or not SPEC_NAME.match(name):
        raise SpecError("name", "expected lowercase letters, digits and single '.', '_' or "
                                f"'-' between them, at most {SPEC_NAME_MAX} characters "
                                f"(it names the environment's image); got {name!r}")
    if name in RESERVED:
        raise SpecError("name", f"{name!r} is reserved; choose another name")
    return name


def clean_path(path, field: str = "path") -> str:
    """A relative POSIX path inside a spec, or SpecError: nothing can point outside it."""
    if not isinstance(path, str) or not path:
        raise SpecError(field, "expected a file path relative to the spec, like data/a.csv")
    if len(path) > PATH_MAX or any(ord(c) < 32 for c in path):
        raise SpecError(field, f"{path[:80]!r}: too long or contains control characters")
    if "\\" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise SpecError(field, f"{path!r}: an absolute or Windows path; expected a relative "
                               "path with '/' between folders")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise SpecError(field, f"{path!r} names no file")
    if ".." in parts:
        raise SpecError(field, f"{path!r} points outside the spec ('..')")
    if any(p.lower() == ".git" for p in parts):
        raise SpecError(field, f"{path!r}: a .git folder cannot be part of a spec")
    return "/".join(parts)


def strip_common_folder(paths: list[str]) -> str:
    """The one top folder every path is inside (a zip of 'project/...'), else ''.

    A lone ``binder/`` or ``.binder/`` is configuration, not a wrapper: it stays.
    """
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1 and all("/" in p for p in paths) and not tops & set(CONFIG_DIRS):
        return tops.pop()
    return ""
