"""The composer's sections and the REES files they become (and are read back from).

Most sections are one REES file, written exactly as typed. Two are not:

- ``extensions`` (JupyterLab / Jupyter server extensions, one pip requirement a line) is
  stored as ``jupyter-extensions.txt``, a file repo2docker itself ignores, and installed by
  a generated ``postBuild`` into the environment that runs the Jupyter server
  (``$NB_PYTHON_PREFIX``), whichever build pack repo2docker picks. The user's own
  postBuild steps follow below a marker line, verbatim, so they read back unchanged.
- A spec whose files live in ``binder/`` or ``.binder/`` (imported or forked repositories)
  keeps them there: repo2docker reads configuration only from that folder then.
- ``services`` (the add-on services every launch gets, a JSON list) is not a REES file
  but tljh-rees's own: ``.rees/services.json``, always at the root of the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    id: str
    file: str
    label: str
    help: str
    aliases: tuple[str, ...] = ()
    executable: bool = False
    root: bool = False  # always at the repository's root, wherever REES files are

    @property
    def names(self) -> tuple[str, ...]:
        return (self.file, *self.aliases)


SECTIONS = (
    Section("requirements", "requirements.txt", "Python packages",
            "One pip requirement a line (PEP 508), e.g. numpy==2.1 or pandas>=2."),
    Section("environment", "environment.yml", "Conda environment",
            "A conda environment.yml; when present, repo2docker ignores requirements.txt.",
            aliases=("environment.yaml",)),
    Section("apt", "apt.txt", "System packages",
            "Debian/Ubuntu package names, one a line, e.g. curl or libgdal-dev."),
    Section("runtime", "runtime.txt", "Runtime",
            "python-3.12, or r-4.4-2025-01-15 (R version and CRAN snapshot date)."),
    Section("install_r", "install.R", "R packages",
            "An R script run at build time, e.g. install.packages(\"ggplot2\"). Needs an R "
            "runtime in runtime.txt."),
    Section("julia", "Project.toml", "Julia project",
            "A Julia Project.toml ([deps] and [compat]).", aliases=("JuliaProject.toml",)),
    Section("extensions", "jupyter-extensions.txt", "JupyterLab and server extensions",
            "Python packages of Jupyter extensions, one a line (e.g. jupyterlab-git). "
            "Installed by postBuild into the environment that runs Jupyter."),
    Section("postBuild", "postBuild", "Post-build script",
            "A script run once after the environment is installed.", executable=True),
    Section("start", "start", "Start script",
            "Runs every time a server starts; must end with exec \"$@\".", executable=True),
    Section("dockerfile", "Dockerfile", "Dockerfile (advanced)",
            "A Dockerfile replaces everything above: repo2docker then builds only it."),
    Section("services", ".rees/services.json", "Add-on services",
            "A JSON list of the databases every server of this environment gets, e.g. "
            "[{\"name\": \"postgres\", \"params\": {\"database\": \"lab\"}}, "
            "{\"name\": \"redis\"}]. Their Python clients are installed by the build "
            "(not with a Dockerfile: install them in it).", root=True),
)
SECTION_IDS = tuple(s.id for s in SECTIONS)
BY_ID = {s.id: s for s in SECTIONS}
CONFIG_DIRS = (".binder", "binder")

EXTENSIONS_MARKER = "# ---- postBuild steps written in the composer ----"
EXTENSIONS_HEADER = (
    "#!/bin/bash\n"
    "# Written by the tljh-rees composer: installs the Jupyter extensions listed in\n"
    "# jupyter-extensions.txt into the environment that runs the Jupyter server.\n"
    '"${NB_PYTHON_PREFIX}/bin/python" -m pip install --no-cache-dir '
    '-r "$(dirname "$0")/jupyter-extensions.txt" || exit 1\n'
    + EXTENSIONS_MARKER + "\n"
)


ROOT_FILES = {s.file for s in SECTIONS if s.root}


def may_be_section(path: str) -> bool:
    """Whether ``path`` could be a section's file (so its content is worth reading)."""
    if path in ROOT_FILES:
        return True
    folder, _, name = path.rpartition("/")
    return folder in ("", *CONFIG_DIRS) and any(name in s.names for s in SECTIONS
                                                 if not s.root)


def config_dir(paths) -> str:
    """Where repo2docker reads configuration: ``.binder``, ``binder`` or the root ("")."""
    dirs = {p.split("/", 1)[0] for p in paths if "/" in p}
    return next((d for d in CONFIG_DIRS if d in dirs), "")


def section_paths(paths, folder: str) -> dict[str, str]:
    """The path each section is stored at, keeping an alias name a spec already uses."""
    existing = set(paths)
    result = {}
    for section in SECTIONS:
        if section.root:
            result[section.id] = section.file
            continue
        candidates = [os.path.join(folder, n) if folder else n for n in section.names]
        result[section.id] = next((c for c in candidates if c in existing), candidates[0])
    return result


def sections_from_files(files: dict[str, bytes], all_paths=None
                        ) -> tuple[dict[str, str], dict[str, str]]:
    """Read sections back from a spec's files: (sections, path of each section).

    ``files`` needs only the contents of section files; ``all_paths`` lists every file
    (a ``binder/`` folder decides where configuration lives even without them).
    """
    all_paths = set(files) if all_paths is None else set(all_paths)
    paths = section_paths(all_paths, config_dir(all_paths))
    sections = {}
    for section in SECTIONS:
        data = files.get(paths[section.id])
        sections[section.id] = data.decode("utf-8", "replace") if data is not None else ""
    post_build = sections["postBuild"]
    if post_build.startswith(EXTENSIONS_HEADER):
        sections["postBuild"] = post_build[len(EXTENSIONS_HEADER):]
    else:
        # without our postBuild header a jupyter-extensions.txt is just a file of the
        # repository: not shown as the section, and left alone on save
        sections["extensions"] = ""
        del paths["extensions"]
    return sections, paths


def files_from_sections(sections: dict[str, str], paths: dict[str, str]) -> dict[str, str | None]:
    """The files the sections become; ``None`` means the file must not exist."""
    files: dict[str, str | None] = {}
    extensions = (sections.get("extensions") or "").strip()
    for section in SECTIONS:
        text = sections.get(section.id) or ""
        path = paths.get(section.id)
        if path is None:  # an unmanaged jupyter-extensions.txt (see sections_from_files)
            if not extensions:
                continue
            path = paths[section.id] = default_path(section, paths)
        files[path] = text if text.strip() else None
    if extensions:
        files[paths["postBuild"]] = EXTENSIONS_HEADER + (sections.get("postBuild") or "")
    return files


def default_path(section: Section, paths: dict[str, str]) -> str:
    if section.root:
        return section.file
    folder = os.path.dirname(paths["postBuild"])
    return os.path.join(folder, section.file) if folder else section.file


def is_executable(path: str) -> bool:
    return os.path.basename(path) in {s.file for s in SECTIONS if s.executable}
