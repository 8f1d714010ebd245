"""Validation of each section as the user types, with line numbers.

Checks are what the files' own consumers accept: PEP 508 (``packaging``) for pip lines,
Debian policy for package names, repo2docker's runtime.txt forms, YAML/TOML parsers,
``bash -n`` for shell scripts. Errors block saving; warnings do not (e.g. a section that
repo2docker would ignore next to a Dockerfile).
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from ..errors import InputError
from ..services.kinds import ServiceCatalog
from .sections import BY_ID

try:
    import tomllib
except ImportError:  # Python < 3.11
    import toml as tomllib  # repo2docker depends on it

ERROR, WARNING = "error", "warning"

# Longer lines are reported instead of checking their section: no REES file needs them, and
# third-party parsers (packaging, PyYAML, bash) then never see a hostile megabyte line.
MAX_LINE_CHARS = 10_000


@dataclass(frozen=True)
class Problem:
    section: str
    line: int | None  # 1-based; None when the problem is about the whole section
    message: str
    severity: str = ERROR

    def to_dict(self) -> dict:
        data = asdict(self)
        data["file"] = BY_ID[self.section].file
        return data


def _numbered(text: str):
    """(line number, line) as the files' readers count lines: by newlines only."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line


# --- pip requirement files (requirements.txt, jupyter-extensions.txt) -------------------

PIP_FILE_OPTIONS = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
    "--extra-index-url", "--no-index", "-f", "--find-links", "--pre", "--trusted-host",
    "--prefer-binary", "--require-hashes", "--only-binary", "--no-binary", "--use-feature",
}
_URL_OR_PATH = re.compile(r"^([a-z][a-z0-9+.-]*://|git\+|hg\+|svn\+|bzr\+|\.{0,2}/)", re.I)
# A '#' at the start or after whitespace starts a comment (pip's rule). pip writes it
# (^|\s+)#.*$, which backtracks quadratically over long runs of spaces; a one-character
# lookbehind finds the same '#' and the whitespace before it is stripped afterwards.
_COMMENT = re.compile(r"(?:^|(?<=\s))#")
# An option after a requirement ("numpy --hash=..."), found the same way (not \s+--?[a-z]).
_TRAILING_OPTION = re.compile(r"(?<=\s)--?[a-z]")


def _strip_comment(line: str) -> str:
    comment = _COMMENT.search(line)
    return line[:comment.start()].rstrip() if comment else line


def _logical_lines(text: str):
    """pip's view of a file: comments removed, backslash continuations joined."""
    start, parts = None, []
    for number, line in _numbered(text):
        if start is None:
            start = number
        line = _strip_comment(line)
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, " ".join(p.strip() for p in parts).strip()
        start, parts = None, []
    if parts:
        yield start, " ".join(p.strip() for p in parts).strip()


def check_requirement(text: str) -> str | None:
    """Why one requirement is not PEP 508, or None when it is."""
    try:
        Requirement(text)
    except InvalidRequirement as e:
        reason = str(e).splitlines()[0]
        hint = ""
        if re.match(r"^[A-Za-z0-9._-]+\s*=\s*[^=]", text):
            hint = " (pin a version with ==, e.g. numpy==2.1)"
        elif text.startswith("@"):
            hint = (" (this looks like an npm name; JupyterLab 3+ extensions are Python "
                    "packages, e.g. jupyterlab-git)")
        return f"{text!r} is not a valid requirement (PEP 508): {reason}{hint}"
    return None


def check_pip_file(section: str, text: str, allow_options: bool = True) -> list[Problem]:
    problems = []
    for number, line in _logical_lines(text):
        if not line:
            continue
        if line.startswith("-"):
            option = re.split(r"[\s=]", line, maxsplit=1)[0]
            if not allow_options:
                problems.append(Problem(section, number, f"pip options like {option} are not "
                                        "allowed here; one package a line"))
            elif option not in PIP_FILE_OPTIONS:
                problems.append(Problem(section, number, f"unknown pip option {option!r}; "
                                        f"expected a requirement like numpy==2.1"))
            continue
        option = _TRAILING_OPTION.search(line)
        requirement = (line[:option.start()] if option else line).strip()
        if _URL_OR_PATH.match(requirement):
            continue  # pip installs from URLs and paths too; PEP 508 has no word on them
        reason = check_requirement(requirement)
        if reason:
            problems.append(Problem(section, number, reason))
    return problems


# --- apt.txt ------------------------------------------------------------------------------

# Debian policy 5.6.1: lowercase letters, digits, + - . ; at least two characters,
# starting with a letter or digit. Optional :arch and =version, as apt-get accepts.
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")


def check_apt(text: str) -> list[Problem]:
    problems = []
    for number, line in _numbered(text):
        package = line.partition("#")[0].strip()  # repo2docker's own comment rule
        if not package:
            continue
        if len(package.split()) > 1:
            problems.append(Problem("apt", number, f"{package!r}: one package a line"))
        elif not _DEBIAN_PACKAGE.match(package):
            hint = " (package names are lowercase)" if package.lower() != package else ""
            problems.append(Problem("apt", number, f"{package!r} is not a Debian package "
                                    "name: lowercase letters, digits, '+', '-' and '.', at "
                                    f"least 2 characters, starting with a letter or digit"
                                    f"{hint}"))
    return problems


# --- runtime.txt --------------------------------------------------------------------------

_PYTHON_RUNTIME = re.compile(r"^python-(\d+)(?:\.(\d+))?$")
_R_RUNTIME = re.compile(r"^r-(?:(\d+(?:\.\d+){0,2})-)?(\d{4}-\d{2}-\d{2})$")
RUNTIME_FORMS = "python-3.12, python-3, r-4.4-2025-01-15 or r-2025-01-15"


def _supported_pythons() -> tuple[str, ...]:
    from repo2docker.buildpacks.conda.supported_python_version import SUPPORTED_PYTHON_VERSION

    return (*SUPPORTED_PYTHON_VERSION, "2.7")


def parse_runtime(text: str) -> tuple[str | None, int | None]:
    """(the runtime line, its line number) — the first non-empty line."""
    for number, line in _numbered(text):
        if line.strip():
            return line.strip(), number
    return None, None


def check_runtime(text: str) -> list[Problem]:
    value, number = parse_runtime(text)
    if value is None:
        return []
    problems = []
    extra = [n for n, line in _numbered(text) if line.strip() and n != number]
    if extra:
        problems.append(Problem("runtime", extra[0], "runtime.txt holds a single line "
                                f"(like {RUNTIME_FORMS}); repo2docker reads the whole file"))
    python = _PYTHON_RUNTIME.match(value)
    r = _R_RUNTIME.match(value)
    if python:
        version = ".".join(v for v in python.groups() if v)
        supported = _supported_pythons()
        if python.group(2) and version not in supported:
            problems.append(Problem("runtime", number, f"repo2docker supports Python "
                                    f"{', '.join(supported)}; got {version}", WARNING))
        elif not python.group(2) and python.group(1) not in ("2", "3"):
            problems.append(Problem("runtime", number, f"unknown Python major version "
                                    f"{version}; expected python-3 or python-3.12"))
    elif r:
        try:
            date = datetime.date.fromisoformat(r.group(2))
        except ValueError:
            problems.append(Problem("runtime", number, f"{r.group(2)} is not a date "
                                    "(YYYY-MM-DD)"))
        else:
            from repo2docker.buildpacks.r import RSPM_CUTOFF_DATE

            if date < RSPM_CUTOFF_DATE:
                problems.append(Problem("runtime", number, "repo2docker's CRAN snapshots "
                                        f"start on {RSPM_CUTOFF_DATE}; got {date}"))
            elif date > datetime.date.today():
                problems.append(Problem("runtime", number, f"the snapshot date {date} is in "
                                        "the future"))
    elif re.match(r"^r-\d+(\.\d+)*$", value):
        problems.append(Problem("runtime", number, f"{value!r}: R needs a CRAN snapshot "
                                f"date too, e.g. {value}-2025-01-15"))
    elif re.match(r"^python-\d+\.\d+\.\d+$", value):
        problems.append(Problem("runtime", number, f"{value!r}: give major.minor only, "
                                f"e.g. {value.rsplit('.', 1)[0]}"))
    else:
        problems.append(Problem("runtime", number, f"{value!r} is not a runtime repo2docker "
                                f"knows; expected {RUNTIME_FORMS}"))
    return problems


# --- environment.yml ----------------------------------------------------------------------

# channel::name[selector] version[selector], as pieces: each is matched from where the
# previous one ended and takes all it can (see is_conda_spec).
_CONDA_CHANNEL = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*::")
_CONDA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_CONDA_VERSION = re.compile(r"\s*[<>=!~]{0,2}\s*[A-Za-z0-9_.*+!<>=,|~ -]*")
_SPACES = re.compile(r"\s*")
_BRACKETS = re.compile(r"\[[^\]]*\]")
ENVIRONMENT_KEYS = {"name", "channels", "dependencies", "prefix", "variables"}


def is_conda_spec(spec: str) -> bool:
    """Whether ``spec`` is a conda package spec like numpy, numpy>=2.1 or conda-forge::numpy.

    One regex for the whole spec let the name, the spaces and the version share
    characters, so a failing match retried every split (cubic in a run of spaces). Here
    each piece is greedy and matched once: the name runs until a character it cannot
    hold, and so on. That accepts the same specs, because a shorter piece would only hand
    characters to the next one, which accepts them too.
    """
    channel = _CONDA_CHANNEL.match(spec)
    name = _CONDA_NAME.match(spec, channel.end() if channel else 0)
    if not name:
        return False
    end = name.end()
    selector = _BRACKETS.match(spec, _SPACES.match(spec, end).end())
    if selector:
        end = selector.end()
    end = _CONDA_VERSION.match(spec, end).end()
    selector = _BRACKETS.match(spec, end)
    if selector:
        end = selector.end()
    return end == len(spec)


def _node_line(node) -> int:
    return node.start_mark.line + 1


def check_environment(text: str) -> list[Problem]:
    if not text.strip():
        return []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)  # also catches e.g. unknown tags the composer tolerates
    except RecursionError:  # PyYAML recurses once per level: "[[[[..." stops it here
        return [Problem("environment", None, "not valid YAML: nested too deeply")]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        reason = getattr(e, "problem", None) or str(e)
        return [Problem("environment", mark.line + 1 if mark else None,
                        f"not valid YAML: {reason}")]
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        return [Problem("environment", _node_line(root), "expected a mapping with "
                        "'dependencies' (and optionally 'name' and 'channels')")]
    problems = []
    for key_node, value_node in root.value:
        key = key_node.value
        if key not in ENVIRONMENT_KEYS:
            problems.append(Problem("environment", _node_line(key_node), f"unknown key "
                                    f"{key!r}; conda knows {', '.join(sorted(ENVIRONMENT_KEYS))}",
                                    WARNING))
        elif key == "channels" and not isinstance(value_node, yaml.SequenceNode):
            problems.append(Problem("environment", _node_line(value_node),
                                    "'channels' must be a list, e.g. [conda-forge]"))
        elif key == "dependencies":
            problems += _check_dependencies(value_node)
    return problems


def _once(nodes, checked: set[int]):
    """Each node the first time it appears: YAML aliases repeat a node without repeating
    its text, so a short file could otherwise ask for millions of checks."""
    for node in nodes:
        if id(node) not in checked:
            checked.add(id(node))
            yield node


def _check_dependencies(node) -> list[Problem]:
    if not isinstance(node, yaml.SequenceNode):
        return [Problem("environment", _node_line(node), "'dependencies' must be a list of "
                        "packages, e.g. - numpy=2.1")]
    problems, has_pip, pip_line = [], False, None
    items: set[int] = set()
    pip_lists: set[int] = set()
    pip_entries: set[int] = set()
    for item in _once(node.value, items):
        if isinstance(item, yaml.ScalarNode):
            spec = str(item.value).strip()
            if re.match(r"^pip(\s|$|[<>=])", spec):
                has_pip = True
            if not is_conda_spec(spec):
                problems.append(Problem("environment", _node_line(item), f"{spec!r} is not a "
                                        "conda package spec like numpy or numpy>=2.1"))
        elif isinstance(item, yaml.MappingNode) and [k.value for k, _ in item.value] == ["pip"]:
            pip_list = item.value[0][1]
            pip_line = _node_line(item)
            if not isinstance(pip_list, yaml.SequenceNode):
                problems.append(Problem("environment", _node_line(pip_list),
                                        "'pip' must be a list of pip requirements"))
                continue
            if id(pip_list) in pip_lists:
                continue  # the same list again, by an alias
            pip_lists.add(id(pip_list))
            for entry in _once(pip_list.value, pip_entries):
                if not isinstance(entry, yaml.ScalarNode):
                    problems.append(Problem("environment", _node_line(entry),
                                            "a pip entry must be a requirement like numpy==2.1"))
                    continue
                for p in check_pip_file("environment", str(entry.value)):
                    problems.append(Problem("environment", _node_line(entry), p.message))
        else:
            problems.append(Problem("environment", _node_line(item), "a dependency is a "
                                    "package spec or a 'pip:' list"))
    if pip_line and not has_pip:
        problems.append(Problem("environment", pip_line, "a 'pip:' list without 'pip' among "
                                "the dependencies: add - pip", WARNING))
    return problems


# --- install.R ----------------------------------------------------------------------------

_CLOSERS = {")": "(", "]": "[", "}": "{"}


def check_r_script(text: str) -> list[Problem]:
    """Balanced brackets and closed strings: what can be checked without R itself."""
    stack: list[tuple[str, int]] = []
    quote, quote_line = None, 0
    for number, line in _numbered(text):
        i = 0
        while i < len(line):
            c = line[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = None
            elif c == "#":
                break
            elif c in "'\"`":
                quote, quote_line = c, number
            elif c in "([{":
                stack.append((c, number))
            elif c in _CLOSERS:
                if not stack or stack[-1][0] != _CLOSERS[c]:
                    return [Problem("install_r", number, f"unexpected {c!r}")]
                stack.pop()
            i += 1
    if quote:
        return [Problem("install_r", quote_line, f"string opened with {quote} is never closed")]
    if stack:
        bracket, number = stack[-1]
        return [Problem("install_r", number, f"{bracket!r} is never closed")]
    return []


# --- Project.toml ---------------------------------------------------------------------------

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _line_of(text: str, pattern: str) -> int | None:
    for number, line in _numbered(text):
        if re.search(pattern, line):
            return number
    return None


def _key_lines(text: str) -> dict[str, int]:
    """The first line of each ``key =`` or ``"key" =``, in one pass over the text.

    Looking each name up with its own search of the whole text was quadratic in a
    Project.toml with many bad entries. Keys holding '=' are not found (no line given).
    """
    lines: dict[str, int] = {}
    for number, line in _numbered(text):
        key, equals, _ = line.partition("=")
        if not equals:
            continue
        for name in _unquoted(key.strip()):
            lines.setdefault(name, number)
    return lines


def _unquoted(key: str) -> set[str]:
    """The names ``key`` can be with an optional '"' on either side (as "?name"? matched)."""
    fronts = (key, key[1:]) if key.startswith('"') else (key,)
    return {name for front in fronts
            for name in ((front, front[:-1]) if front.endswith('"') else (front,))}


def check_project_toml(text: str) -> list[Problem]:
    if not text.strip():
        return []
    try:
        data = tomllib.loads(text)
    except Exception as e:  # tomllib.TOMLDecodeError / toml.TomlDecodeError
        match = re.search(r"line (\d+)", str(e))
        return [Problem("julia", int(match.group(1)) if match else None,
                        f"not valid TOML: {e}")]
    problems = []
    deps = data.get("deps", {})
    if not isinstance(deps, dict):
        problems.append(Problem("julia", _line_of(text, r"^\s*deps\s*="),
                                "[deps] must be a table of Name = \"uuid\""))
        deps = {}
    key_lines = _key_lines(text) if deps else {}
    for name, uuid in deps.items():
        if not isinstance(uuid, str) or not _UUID.match(uuid):
            problems.append(Problem("julia", key_lines.get(name),
                                    f"{name}: expected the package's UUID, like "
                                    "\"7876af07-990d-54b4-ab0e-23690620f79a\""))
    compat = data.get("compat", {})
    if isinstance(compat, dict) and "julia" in compat and not isinstance(compat["julia"], str):
        problems.append(Problem("julia", _line_of(text, r"^\s*julia\s*="),
                                "compat julia must be a version string like \"1.10\""))
    return problems


# --- postBuild and start ------------------------------------------------------------------

# A line (after spaces) starting exec "$@". Not ^\s*exec with re.M: \s also matches
# newlines, so every line start rescanned all the blank lines after it (quadratic).
_EXEC_ARGS = re.compile(r'^[^\S\n]*exec\s+"\$@"', re.M)
_SHELLS = re.compile(r"^#!\s*(/usr)?/bin/(env\s+)?(ba|da)?sh(\s|$)")


def _shell_syntax(section: str, text: str) -> list[Problem]:
    bash = shutil.which("bash")
    if not bash:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
        f.write(text)
        f.flush()
        result = subprocess.run([bash, "-n", f.name], capture_output=True, text=True,
                                timeout=10)
    problems = []
    for line in result.stderr.splitlines():
        match = re.search(r"line (\d+): (.*)$", line)
        if match:
            problems.append(Problem(section, int(match.group(1)),
                                    f"shell syntax: {match.group(2)}"))
    return problems[:5]


def check_script(section: str, text: str, with_extensions: bool = False) -> list[Problem]:
    if not text.strip():
        return []
    problems = []
    for number, line in _numbered(text):
        if "\r" in line:
            problems.append(Problem(section, number, "Windows line ending (CR): the script "
                                    "would fail in Linux; save it with Unix line endings"))
            break
    first = text.split("\n", 1)[0]
    shell = not first.startswith("#!") or bool(_SHELLS.match(first))
    if not first.startswith("#!") and not with_extensions:
        problems.append(Problem(section, 1, "no '#!' line: add '#!/bin/bash' as the first "
                                "line so it runs the same everywhere", WARNING))
    if with_extensions and not shell:
        problems.append(Problem(section, 1, "with Jupyter extensions chosen, postBuild is a "
                                "bash script that installs them first, then runs these lines: "
                                "write them in bash (or install the extensions yourself)"))
    if shell:
        problems += _shell_syntax(section, text)
        if section == "start" and not _EXEC_ARGS.search(text):
            problems.append(Problem(section, len(text.rstrip("\n").split("\n")), "a start "
                                    "script must end with exec \"$@\" or the Jupyter server "
                                    "never starts"))
    return problems


# --- Dockerfile ---------------------------------------------------------------------------

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
}
_HEREDOC = re.compile(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")


def check_dockerfile(text: str) -> list[Problem]:
    if not text.strip():
        return []
    problems, seen_from, continued, heredoc = [], False, False, None
    for number, line in _numbered(text):
        stripped = line.strip()
        if heredoc:
            if stripped == heredoc:
                heredoc = None
            continue
        if continued:
            continued = stripped.endswith("\\")
            continue
        if not stripped or stripped.startswith("#"):
            continue
        word = stripped.split(None, 1)[0]
        if word.upper() not in DOCKERFILE_INSTRUCTIONS:
            problems.append(Problem("dockerfile", number, f"unknown instruction {word!r}; "
                                    "expected one of FROM, RUN, COPY, ENV, USER, ..."))
        elif not seen_from and word.upper() not in ("FROM", "ARG"):
            problems.append(Problem("dockerfile", number, f"{word.upper()} before FROM: a "
                                    "Dockerfile starts with FROM <image>"))
            seen_from = True  # one report is enough
        if word.upper() == "FROM":
            seen_from = True
            if len(stripped.split()) < 2:
                problems.append(Problem("dockerfile", number, "FROM needs an image name"))
        doc = _HEREDOC.search(stripped)
        if doc and word.upper() in ("RUN", "COPY", "ADD"):
            heredoc = doc.group(1)
        continued = stripped.endswith("\\")
    if not seen_from:
        problems.append(Problem("dockerfile", None, "no FROM line: a Dockerfile starts with "
                                "FROM <image>"))
    return problems


# --- add-on services (.rees/services.json) ---------------------------------------------

def check_services(text: str, offer: ServiceCatalog | None) -> list[Problem]:
    """A JSON list of services this site offers, each checked as PATCH checks an
    environment's; the message names the field (``services[0].params.maxmemory``)."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as e:
        return [Problem("services", getattr(e, "lineno", None),
                        f"not valid JSON: {getattr(e, 'msg', e)}")]
    try:
        (offer or ServiceCatalog()).check(data, where="services")
    except InputError as e:
        return [Problem("services", _field_line(text, e.field), f"{e.field}: {e.message}")]
    return []


def _field_line(text: str, field: str) -> int | None:
    """The line of the ``i``-th service's entry (its ``"name"``), when one can tell."""
    match = re.match(r"services\[(\d+)\]", field or "")
    if not match:
        return None
    names = [text.count("\n", 0, m.start()) + 1
             for m in re.finditer(r'"name"\s*:', text)]
    index = int(match.group(1))
    return names[index] if index < len(names) and len(names) == text.count('"name"') \
        else None


# --- the whole spec -----------------------------------------------------------------------

def conflicts(sections: dict[str, str], other_paths=()) -> list[Problem]:
    """Sections repo2docker would ignore given the others (its detection order)."""
    filled = {k for k, v in sections.items() if (v or "").strip()}
    problems = []
    if "dockerfile" in filled:
        if "services" in filled:
            problems.append(Problem("services", None, "with a Dockerfile, the build does not "
                                    "install the services' Python clients (psycopg, redis): "
                                    "install them in the Dockerfile", WARNING))
        for section in sorted(filled - {"dockerfile", "services"}):
            why = ("the extensions are installed by postBuild, which it does not run"
                   if section == "extensions" else
                   f"{BY_ID[section].file} stays in the build context, for COPY")
            problems.append(Problem(section, None, "ignored: with a Dockerfile, repo2docker "
                                    f"builds only the Dockerfile ({why})", WARNING))
        return problems
    runtime, _ = parse_runtime(sections.get("runtime") or "")
    r_runtime = bool(runtime and _R_RUNTIME.match(runtime))
    if "julia" in filled and r_runtime:
        problems.append(Problem("runtime", None, "ignored: with a Project.toml repo2docker "
                                "builds a Julia environment, not an R one", WARNING))
    elif "environment" in filled and not r_runtime:
        if "requirements" in filled:
            problems.append(Problem("requirements", None, "ignored: with an environment.yml "
                                    "repo2docker installs only the conda environment (put pip "
                                    "packages in its 'pip:' list)", WARNING))
        if runtime and runtime.startswith("python-"):
            problems.append(Problem("runtime", None, "ignored: with an environment.yml the "
                                    "Python version comes from it (add e.g. - python=3.12 to "
                                    "its dependencies)", WARNING))
    if "install_r" in filled and not r_runtime and "DESCRIPTION" not in other_paths:
        problems.append(Problem("install_r", None, "ignored: install.R runs only in R "
                                "environments; set runtime.txt to r-<version>-<YYYY-MM-DD>",
                                WARNING))
    return problems


def long_lines(section: str, text: str) -> list[Problem]:
    """Lines longer than MAX_LINE_CHARS; a section with any is not checked further."""
    return [Problem(section, number, f"longer than {MAX_LINE_CHARS} characters "
                    f"({len(line)}); no REES file needs lines this long")
            for number, line in _numbered(text) if len(line) > MAX_LINE_CHARS]


def validate(sections: dict[str, str], other_paths=(),
             services: ServiceCatalog | None = None) -> list[Problem]:
    """Every section's problems; ``services``: the site's offer of add-on services (none
    when not given)."""
    texts = {section: sections.get(section) or "" for section in BY_ID}
    has_extensions = bool(texts["extensions"].strip())
    checks = {
        "requirements": lambda text: check_pip_file("requirements", text),
        "extensions": lambda text: check_pip_file("extensions", text, allow_options=False),
        "apt": check_apt,
        "runtime": check_runtime,
        "environment": check_environment,
        "install_r": check_r_script,
        "julia": check_project_toml,
        "postBuild": lambda text: check_script("postBuild", text, has_extensions),
        "start": lambda text: check_script("start", text),
        "dockerfile": check_dockerfile,
        "services": lambda text: check_services(text, services),
    }
    problems = []
    for section, check in checks.items():
        problems += long_lines(section, texts[section]) or check(texts[section])
    problems += conflicts(sections, other_paths)
    return problems
