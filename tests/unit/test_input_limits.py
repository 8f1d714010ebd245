"""Hostile composer sections and dependency files cost time in proportion to their size.

The text comes from builders and repository authors; the service parses it as root, in
its event loop. These tests are the attacker's inputs against the parsers, without a
single wall-clock assertion (a project rule):

- Each parse runs in a child Python killed after CHILD_TIMEOUT seconds. A regex match
  holds the GIL until it is done, so a thread could not even be waited for; a child can.
- The reported attacks (which took 27 s to minutes before) must finish in that generous
  time. That catches a parser that is still slow, but not one that is only less slow.
- So each hostile input is also parsed at sizes n, 4n and 16n, and the CPU time
  (``time.process_time``, so other processes' time does not count) compared: linear
  work takes 4 times as long for 4 times the text, quadratic 16 times, cubic 64 times.
  The test allows 8. n grows until a parse takes a measurable time (10 ms), which keeps
  the ratio about the parser rather than about timer noise.
- The growth is the smaller of the two steps (n to 4n, 4n to 16n). A text that outgrows
  the CPU's cache costs more per character, once: on this project's CI machine (1 MiB of
  L2 cache a core) a linear parser measured 10 to 12 times from 256 K to 1 M characters,
  and 4 from 512 K to 2 M. That step falls in one of the two windows; a quadratic parser
  costs 16 times in both. The sizes are parsed in turn, three rounds, and each one's best
  time kept, so that a burst of other work touches all three.
- No test asserts how long anything took.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

from tljh_rees.composer.validate import (MAX_LINE_CHARS, check_apt, check_dockerfile,
                                         check_environment, check_pip_file,
                                         check_project_toml, check_runtime, check_script,
                                         validate)
from tljh_rees.gallery.packages import (MAX_TEXT_CHARS, declared_packages,
                                        from_environment_yml, from_install_r,
                                        from_requirements)

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 20
MAX_GROWTH = 8  # between linear (4) and quadratic (16), for 4 times the input


def run_child(code: str, timeout: float = CHILD_TIMEOUT) -> str | None:
    """Run Python ``code`` in a child with this checkout importable: its output, or None
    if it did not finish within ``timeout`` seconds (the child is then killed)."""
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return None
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- the inputs ----------------------------------------------------------------------------

def pip(text):
    return check_pip_file("requirements", text)


def script(section: str):
    """check_script without its ``bash -n`` child, whose start-up would hide the parse."""
    def parse(text):
        with mock.patch("shutil.which", return_value=None):
            return check_script(section, text)
    return parse


def conda_dependency(spec: str) -> str:
    return "dependencies:\n  - '" + spec.replace("'", "''") + "'\n"


def aliased_pip_lists(size: int) -> str:
    """One pip list of k names, then k dependencies that are that list again by alias:
    about 18k characters that read as k * k requirements."""
    k = max(size // 18, 1)
    return ("x: &L [" + ", ".join(f"p{i}" for i in range(k)) + "]\ndependencies:\n- pip\n"
            + "- {pip: *L}\n" * k)


def bad_julia_deps(size: int) -> str:
    return "[deps]\n" + "".join(f'Pkg{i} = "not-a-uuid"\n' for i in range(size // 24))


def distinct_names(size: int) -> str:
    return "".join(f"p{i}\n" for i in range(size // 7))


# name: (parse, make(n) -> hostile text of about n characters). Each regex the two
# modules keep is here with the characters its quantifiers share.
CASES = {
    "requirements: spaces then x": (pip, lambda n: " " * n + "x"),
    "requirements: name, spaces, x": (pip, lambda n: "a" + " " * n + "x"),
    "requirements: name, spaces, dash": (pip, lambda n: "a" + " " * n + "-"),
    "requirements: ' -' runs": (pip, lambda n: "a" + " -" * (n // 2)),
    "requirements: ' #' runs": (pip, lambda n: " #" * (n // 2)),
    "requirements: '#' runs": (pip, lambda n: "a" + "#" * n),
    "requirements: quotes": (pip, lambda n: "a" + "'\"" * (n // 2)),
    "requirements: name, spaces, no '='": (pip, lambda n: "a" * (n // 2) + " " * (n // 2)
                                           + "x"),
    "requirements: marker, spaces": (pip, lambda n: "a ; python_version" + " " * n + "!"),
    "requirements: URL": (pip, lambda n: "git+" + "a" * n),
    "requirements: option": (pip, lambda n: "--" + "a" * n + " x"),
    "apt.txt: long name": (check_apt, lambda n: "a" * n + "!"),
    "runtime.txt: long version": (check_runtime, lambda n: "r-" + "1." * (n // 2) + "x"),
    "environment.yml: spec, spaces, '#'": (check_environment,
                                           lambda n: conda_dependency("a" + " " * n + "#")),
    "environment.yml: long name, '#'": (check_environment,
                                        lambda n: conda_dependency("a" * n + "#")),
    "environment.yml: version, spaces": (check_environment,
                                         lambda n: conda_dependency("a=" + "1 " * (n // 2)
                                                                    + "#")),
    "environment.yml: channel slashes": (check_environment,
                                         lambda n: conda_dependency("a/" * (n // 2))),
    "environment.yml: aliased pip lists": (check_environment, aliased_pip_lists),
    "Project.toml: many bad entries": (check_project_toml, bad_julia_deps),
    "start: blank lines, no exec": (script("start"),
                                    lambda n: "#!/bin/bash\n" + "\n" * n + "x\n"),
    "start: space-newline runs": (script("start"),
                                  lambda n: "#!/bin/bash\n" + " \n" * (n // 2) + "x\n"),
    "start: exec, newlines": (script("start"), lambda n: "#!/bin/bash\nexec" + "\n" * n),
    "postBuild: shebang, spaces": (script("postBuild"),
                                   lambda n: "#!/bin/env" + " " * n + "x\n"),
    "Dockerfile: heredoc markers": (check_dockerfile,
                                    lambda n: "FROM x\nRUN " + "<<-" * (n // 3)),
    "Dockerfile: '<<' then spaces": (check_dockerfile,
                                     lambda n: "FROM x\nRUN <<" + " " * n),
    "install.R: open calls": (from_install_r, lambda n: "install.packages(" * (n // 17)),
    "install.R: calls, spaces": (from_install_r,
                                 lambda n: ("install.packages" + " " * 20) * (n // 36)),
    "install.R: quotes": (from_install_r,
                          lambda n: "install.packages(" + "'a" * (n // 2) + ")"),
    "gallery requirements.txt: distinct names": (from_requirements, distinct_names),
    "gallery requirements.txt: name, ':'": (from_requirements, lambda n: "a" * n + ":"),
    "gallery environment.yml: aliased pip lists": (from_environment_yml, aliased_pip_lists),
}


def quadratic_control(text: str) -> int:
    """A parser that is quadratic on purpose: the measure must catch it."""
    return sum(text.count(c) for c in text[::64])


CONTROL = "control: a quadratic parser"
MEASURED = {**CASES, CONTROL: (quadratic_control, lambda n: "a" * n)}
ROUNDS = 3  # each size parsed this many times, in turn with the others


def cpu_seconds(parse, text: str) -> float:
    start = time.process_time()
    parse(text)
    return time.process_time() - start


def growth(case: str) -> float:
    """How much more CPU time 4 times the text takes: the smaller of n→4n and 4n→16n,
    for an n whose parse takes at least 10 ms."""
    parse, make = MEASURED[case]
    n = 64
    while min(cpu_seconds(parse, make(n)) for _ in range(3)) < 0.01 and n < 2**20:
        n *= 2
    texts = [make(n), make(4 * n), make(16 * n)]
    best = [float("inf")] * len(texts)
    for _ in range(ROUNDS):
        for i, text in enumerate(texts):
            best[i] = min(best[i], cpu_seconds(parse, text))
    return min(best[1] / max(best[0], 1e-4), best[2] / max(best[1], 1e-4))


@pytest.mark.parametrize("case", sorted(CASES))
def test_parsing_work_grows_linearly(case):
    """4 times the hostile text may cost at most 8 times the CPU (see the module's
    docstring for why this, and not a time limit)."""
    out = run_child(f"from tests.unit.test_input_limits import growth\n"
                    f"print(growth({case!r}))")
    assert out is not None, f"{case}: not even measured within {CHILD_TIMEOUT}s"
    assert float(out) <= MAX_GROWTH, f"{case}: 4x the input cost {float(out):.1f}x"


def test_the_measure_catches_a_quadratic_parser():
    """Its 16n step alone costs 256 times its n step (at least 10 ms): seconds."""
    out = run_child(f"from tests.unit.test_input_limits import growth\n"
                    f"print(growth({CONTROL!r}))", timeout=60)
    assert out is not None, "not even measured within 60 s"
    assert float(out) > MAX_GROWTH, f"a quadratic parser measured {float(out):.1f}x"


# The reported attacks and their relatives, at sizes that took half a minute to hours
# before (40,000 spaces took 27 s where they were reported, 7 s on a faster machine).
ATTACKS = {
    "requirements: 120,000 spaces then x":
        "check_pip_file('requirements', ' ' * 120000 + 'x')",
    "composer: 120,000 spaces then x": "validate({'requirements': ' ' * 120000 + 'x'})",
    "install.R: 20,000 open install.packages(":
        "from_install_r('install.packages(' * 20000)",
    "gallery: 340 KB install.R of open calls":
        "declared_packages({'install.R': 'install.packages(' * 20000})",
    "environment.yml: spec, 3,000 spaces, '#'":
        "check_environment(conda_dependency('a' + ' ' * 3000 + '#'))",
    "environment.yml: 2,400 aliases of a 2,400-name pip list":
        "check_environment(aliased_pip_lists(2400 * 18))",
    "gallery environment.yml: 2,400 aliases of a 2,400-name pip list":
        "from_environment_yml(aliased_pip_lists(2400 * 18))",
    "Project.toml: 20,000 bad entries": "check_project_toml(bad_julia_deps(20000 * 24))",
    "composer Project.toml: a 400,000-character dotted key":
        "validate({'julia': '1.' * 200000})",  # tomllib itself is quadratic on these
    "gallery requirements.txt: 100,000 names": "declared_packages({'requirements.txt': "
                                               "distinct_names(100000 * 7)})",
    "start: 200,000 blank lines": "check_script('start', '#!/bin/bash\\n' + '\\n' * 200000 "
                                  "+ 'x\\n')",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_reported_attacks_finish(attack):
    out = run_child("from tests.unit.test_input_limits import *\n"
                    f"{ATTACKS[attack]}\nprint('done')")
    assert out is not None and out.strip() == "done", \
        f"{attack}: not done within {CHILD_TIMEOUT}s"


# --- the limits, as a user meets them ------------------------------------------------------

def test_a_long_line_is_reported_with_its_line_instead_of_checked():
    long = "x" * (MAX_LINE_CHARS + 1)
    problems = validate({"requirements": f"numpy==2.1\n{long}\n==bad\n", "apt": "curl\nBad\n"})
    assert [(p.section, p.line, p.severity) for p in problems] == [
        ("requirements", 2, "error"),  # only the length: '==bad' is not even parsed
        ("apt", 2, "error"),           # other sections are checked as usual
    ]
    assert problems[0].message.startswith(f"longer than {MAX_LINE_CHARS} characters")
    assert validate({"requirements": "x" * MAX_LINE_CHARS}) == []  # up to the limit: fine


def test_package_discovery_reads_only_the_start_of_a_file():
    padding = "# " + "." * MAX_TEXT_CHARS + "\n"
    found = declared_packages({"requirements.txt": "numpy\n" + padding + "pandas\n",
                               "install.R": "install.packages('dplyr')\n" + padding
                                            + "install.packages('ggplot2')\n"})
    assert found == {"python": ["numpy"], "r": ["dplyr"]}


def test_deeply_nested_yaml_is_a_problem_not_a_crash():
    nested = "dependencies: " + "[" * 5000
    assert [p.message for p in check_environment(nested)] == [
        "not valid YAML: nested too deeply"]
    assert from_environment_yml(nested) == {}


def test_aliased_pip_lists_are_checked_and_read_once():
    text = ("x: &L ['numpy', 'not valid!']\ndependencies:\n- pip\n- {pip: *L}\n"
            "- {pip: *L}\n- &S 'bad#spec'\n- *S\n")
    problems = [(p.line, p.message.split(" is not")[0]) for p in check_environment(text)
                if p.severity == "error"]
    assert problems == [(1, "'not valid!'"), (6, "'bad#spec'")]
    assert from_environment_yml(text) == {"conda": ["bad"], "python": ["numpy", "not"]}


def test_julia_problems_still_name_their_lines():
    text = '[deps]\nGood = "7876af07-990d-54b4-ab0e-23690620f79a"\nBad = "x"\n"Quoted" = 1\n'
    assert [(p.line, p.message.split(":")[0]) for p in check_project_toml(text)] == [
        (3, "Bad"), (4, "Quoted")]


# --- same answers as the regexes they replace ------------------------------------------

# The original patterns, kept here to show the rewrites accept exactly what they did.
OLD_CONDA_SPEC = re.compile(
    r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*::)?[A-Za-z0-9_][A-Za-z0-9_.+-]*"
    r"(\s*\[[^\]]*\])?(\s*[<>=!~]{0,2}\s*[A-Za-z0-9_.*+!<>=,|~ -]*)?(\[[^\]]*\])?$")
OLD_COMMENT = re.compile(r"(^|\s+)#.*$")
OLD_R_CALL = re.compile(r"install\.packages\s*\(([^)]*)\)", re.S)
OLD_QUOTED = re.compile(r"""["']([A-Za-z][A-Za-z0-9.]*)["']""")


def old_install_r(text):
    names = []
    for call in OLD_R_CALL.findall(text):
        for name in OLD_QUOTED.findall(call):
            if name not in names:
                names.append(name)
    return names


def test_rewritten_parsers_agree_with_the_old_patterns_on_short_text():
    from tljh_rees.composer.validate import _strip_comment, is_conda_spec

    rng = random.Random(508)
    alphabet = "aZ09_.-/:[] \t=<>!~*,|+#x\u00a0"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert is_conda_spec(text) == bool(OLD_CONDA_SPEC.match(text)), text
        assert _strip_comment(text) == OLD_COMMENT.sub("", text), text
    words = ["install.packages", "(", ")", "'a'", '"b.c"', " ", "\n", "x", "'", "c("]
    for _ in range(5000):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 10)))
        assert from_install_r(text) == old_install_r(text), text
