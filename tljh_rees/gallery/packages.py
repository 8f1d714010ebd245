"""The packages an environment's repository declares, read from its dependency files.

These are what the author asked for (requirements.txt, environment.yml, apt.txt,
install.R), which is what a reader wants to see; nothing is executed to find them.
"""

from __future__ import annotations

import re

import yaml

# Only the start of each file is read: real dependency files are a few kilobytes, and
# the repository's author, not the reader, decides what is in them.
MAX_TEXT_CHARS = 256 * 1024

# A package name at the start of a requirement or conda spec ("numpy>=1", "conda-forge::x=1").
_NAME = re.compile(r"^(?:[A-Za-z0-9_.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)")
_R_CALL = "install.packages"
# A quoted R package name. Linear: a name ends at the next quote, so the text after each
# quote is read once.
_QUOTED = re.compile(r"""["']([A-Za-z][A-Za-z0-9.]*)["']""")


def normalize(name: str) -> str:
    """Compare package names the way pip does: case and -_. don't matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(lines) -> list[str]:
    names: dict[str, None] = {}  # ordered, and a set: a list's "in" made this quadratic
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue  # options such as -r, -e, --index-url
        match = _NAME.match(line)
        if match:
            names.setdefault(match.group(1))
    return list(names)


def from_requirements(text: str) -> list[str]:
    return _names(text.splitlines())


def from_apt(text: str) -> list[str]:
    return _names(text.splitlines())


def from_environment_yml(text: str) -> dict[str, list[str]]:
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: "[[[[..." nested too deeply
        return {}
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        return {}
    conda = _names(d for d in deps if isinstance(d, str))
    pip_lists = {id(d["pip"]): d["pip"] for d in deps
                 if isinstance(d, dict) and isinstance(d.get("pip"), list)}
    # each list once: YAML aliases can repeat one list without repeating its text
    pip = _names(p for pip_list in pip_lists.values() for p in pip_list if isinstance(p, str))
    return {"conda": [n for n in conda if n != "pip"], "python": pip}


def _r_calls(text: str):
    """The argument text of each ``install.packages(...)``, up to its first ')'.

    Scanned with str.find: the regex this replaces read to the end of the text for every
    call left open (its [^)]* found no ')'), quadratic in a file of open calls.
    """
    start = text.find(_R_CALL)
    while start != -1:
        opening = start + len(_R_CALL)
        while opening < len(text) and text[opening].isspace():
            opening += 1
        if text.startswith("(", opening):
            closing = text.find(")", opening)
            if closing == -1:
                return  # no call after this one can be closed either
            yield text[opening + 1:closing]
            start = text.find(_R_CALL, closing)
        else:
            start = text.find(_R_CALL, opening)


def from_install_r(text: str) -> list[str]:
    names: dict[str, None] = {}
    for call in _r_calls(text):
        for name in _QUOTED.findall(call):
            names.setdefault(name)
    return list(names)


def config_folder(folders: set[str]) -> str:
    """Like repo2docker: binder/ or .binder/ replaces the top folder when present."""
    for folder in ("binder", ".binder"):
        if folder in folders:
            return folder
    return ""


def declared_packages(files: dict[str, str]) -> dict[str, list[str]]:
    """``{kind: names}`` from ``{repo path: text}`` of dependency files.

    Kinds: python (pip), conda, apt, r.
    """
    folders = {path.rsplit("/", 1)[0] if "/" in path else "" for path in files}
    folder = config_folder(folders)
    chosen = {path.rsplit("/", 1)[-1]: text for path, text in files.items()
              if (path.rsplit("/", 1)[0] if "/" in path else "") == folder}
    found: dict[str, list[str]] = {}

    def add(kind: str, names: list[str]) -> None:
        merged = found.setdefault(kind, [])
        known = set(merged)
        merged += [n for n in dict.fromkeys(names) if n not in known]

    for name, text in sorted(chosen.items()):
        text = text[:MAX_TEXT_CHARS]
        if name == "requirements.txt":
            add("python", from_requirements(text))
        elif name in ("environment.yml", "environment.yaml"):
            for kind, names in from_environment_yml(text).items():
                add(kind, names)
        elif name == "apt.txt":
            add("apt", from_apt(text))
        elif name == "install.R":
            add("r", from_install_r(text))
    return {kind: names for kind, names in found.items() if names}
