"""The packages an environment's repository declares, read from its dependency files.

These are what the author asked for (requirements.txt, environment.yml, apt.txt,
install.R), which is what a reader wants to see; nothing is executed to find them.
"""

from __future__ import annotations

import re

import yaml

# A package name at the start of a requirement or conda spec ("numpy>=1", "conda-forge::x=1").
_NAME = re.compile(r"^(?:[A-Za-z0-9_.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)")
_R_CALL = re.compile(r"install\.packages\s*\(([^)]*)\)", re.S)
_QUOTED = re.compile(r"""["']([A-Za-z][A-Za-z0-9.]*)["']""")


def normalize(name: str) -> str:
    """Compare package names the way pip does: case and -_. don't matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(lines) -> list[str]:
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue  # options such as -r, -e, --index-url
        match = _NAME.match(line)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def from_requirements(text: str) -> list[str]:
    return _names(text.splitlines())


def from_apt(text: str) -> list[str]:
    return _names(text.splitlines())


def from_environment_yml(text: str) -> dict[str, list[str]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        return {}
    conda = _names(d for d in deps if isinstance(d, str))
    pip = []
    for d in deps:
        if isinstance(d, dict) and isinstance(d.get("pip"), list):
            pip += _names(p for p in d["pip"] if isinstance(p, str))
    return {"conda": [n for n in conda if n != "pip"], "python": pip}


def from_install_r(text: str) -> list[str]:
    names = []
    for call in _R_CALL.findall(text):
        for name in _QUOTED.findall(call):
            if name not in names:
                names.append(name)
    return names


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
        merged += [n for n in names if n not in merged]

    for name, text in sorted(chosen.items()):
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
