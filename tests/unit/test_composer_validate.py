"""Validation of the composer's sections: each problem names its section and line."""

from __future__ import annotations

import datetime

import pytest

from tljh_rees.composer.validate import validate


def problems(**sections):
    return [(p.section, p.line, p.severity, p.message) for p in validate(sections)]


def errors(**sections):
    return [(s, line) for s, line, severity, _ in problems(**sections) if severity == "error"]


def messages(**sections):
    return " | ".join(m for *_, m in problems(**sections))


def test_valid_sections_have_no_problems():
    assert problems(
        requirements="# numbers\nnumpy==2.1\npandas>=2 ; python_version>'3.8'\n"
                     "requests[socks] \\\n  >=2.31\n-r more.txt\n"
                     "pkg @ https://example.org/pkg-1.0-py3-none-any.whl\n",
        apt="# tools\ncurl\nlibgdal-dev  # maps\ng++\nlibc6:amd64\nvim=2:9.0.1378-2\n",
        runtime="python-3.12\n",
        extensions="jupyterlab-git\njupyter-resource-usage>=1\n",
        postBuild="#!/bin/bash\nset -e\nif true; then\n  echo ok\nfi\n",
        start='#!/bin/bash\nexport X=1\nexec "$@"\n',
    ) == []
    assert problems(
        environment="name: demo\nchannels: [conda-forge]\ndependencies:\n  - python=3.12\n"
                    "  - numpy>=2\n  - pip\n  - pip:\n    - rich==13.7\n",
        apt="curl\n",
    ) == []


def test_pip_errors_have_line_numbers_and_hints():
    found = problems(requirements="numpy\n\npandas=2\n--frobnicate\nok>=1\nfoo bar\n")
    assert [(s, line) for s, line, *_ in found] == [
        ("requirements", 3), ("requirements", 4), ("requirements", 6)]
    assert "PEP 508" in found[0][3] and "==" in found[0][3]
    assert "--frobnicate" in found[1][3]


def test_continuation_lines_report_the_first_line():
    assert errors(requirements="numpy\nbad \\\n  = 2\n") == [("requirements", 2)]


def test_npm_names_in_extensions_get_a_hint():
    found = problems(extensions="jupyterlab-git\n@jupyterlab/git\n")
    assert [(s, line) for s, line, *_ in found] == [("extensions", 2)]
    assert "Python packages" in found[0][3]
    assert errors(extensions="--index-url https://x\n") == [("extensions", 1)]


@pytest.mark.parametrize("line", ["LibX11", "curl wget", "x", "-curl", "curl;rm -rf /", "é"])
def test_apt_names_follow_debian_policy(line):
    assert errors(apt=f"curl\n{line}\n") == [("apt", 2)]


@pytest.mark.parametrize("value", ["python-3.12", "python-3", "python-2.7", "r-4.4-2025-01-15",
                                   "r-2024-06-01", "r-4.3.1-2023-10-01"])
def test_runtime_forms_accepted(value):
    assert errors(runtime=value + "\n") == []


@pytest.mark.parametrize("value,fragment", [
    ("python", "not a runtime"),
    ("python-3.12.1", "major.minor"),
    ("r-4.3", "snapshot date"),
    ("r-4.3-2023-02-30", "not a date"),
    ("r-4.3-2010-01-01", "snapshots start"),
    ("julia-1.9", "not a runtime"),
])
def test_runtime_errors(value, fragment):
    found = problems(runtime=f"\n{value}\n")
    assert found and found[0][:3] == ("runtime", 2, "error")
    assert fragment in found[0][3]


def test_runtime_future_date_and_unsupported_python():
    tomorrow = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    assert errors(runtime=f"r-4.4-{tomorrow}") == [("runtime", 1)]
    found = problems(runtime="python-3.4")
    assert found[0][2] == "warning" and "supports Python" in found[0][3]
    assert errors(runtime="python-3.12\npython-3.11\n") == [("runtime", 2)]


def test_environment_yaml_errors_point_at_lines():
    assert errors(environment="dependencies:\n  - numpy\n  - [oops\n") == [("environment", 4)]
    assert errors(environment="- numpy\n") == [("environment", 1)]
    assert errors(environment="dependencies: numpy\n") == [("environment", 1)]
    found = problems(environment="dependencies:\n  - numpy\n  - pip:\n    - six=1\n")
    assert ("environment", 4, "error") in [f[:3] for f in found]
    assert ("environment", 3, "warning") in [f[:3] for f in found]  # pip not listed


def test_r_script_brackets_and_strings():
    assert errors(install_r='install.packages(c("a", "b"))\n') == []
    assert errors(install_r='x <- "a # not a comment"\ninstall.packages(c("a"\n') == [
        ("install_r", 2)]
    assert errors(install_r='install.packages("ggplot2)\n') == [("install_r", 1)]
    assert errors(install_r="x)\n") == [("install_r", 1)]


def test_project_toml():
    good = '[deps]\nIJulia = "7073ff75-c697-5162-941a-fcdaad2a7d2a"\n[compat]\njulia = "1.10"\n'
    assert errors(julia=good) == []
    assert errors(julia="[deps]\nIJulia = 3\n") == [("julia", 2)]
    assert errors(julia="[deps\n") == [("julia", 1)]


def test_scripts():
    assert errors(postBuild="#!/bin/bash\nif true; then\necho\n") == [("postBuild", 4)]
    assert errors(postBuild="#!/bin/bash\necho hi\r\n") == [("postBuild", 2)]
    assert errors(start="#!/bin/bash\necho starting\n") == [("start", 2)]
    assert problems(postBuild="echo hi\n")[0][:3] == ("postBuild", 1, "warning")
    # a python postBuild is fine alone, but extensions need a bash postBuild to prepend to
    assert errors(postBuild="#!/usr/bin/env python3\nprint(1)\n") == []
    assert errors(postBuild="#!/usr/bin/env python3\nprint(1)\n",
                  extensions="jupyterlab-git\n") == [("postBuild", 1)]


def test_dockerfile():
    assert errors(dockerfile="# syntax=docker/dockerfile:1\nARG BASE=x\nFROM $BASE\n"
                             "RUN <<EOF\nanything here\nEOF\nRUN a && \\\n  b\nUSER 1000\n") == []
    assert errors(dockerfile="RUN x\nFROM a\nRUNN y\n") == [("dockerfile", 1), ("dockerfile", 3)]
    assert errors(dockerfile="# only a comment\n") == [("dockerfile", None)]


def test_a_dockerfile_makes_other_sections_ignored():
    found = problems(dockerfile="FROM x\n", requirements="numpy\n", apt="curl\n")
    ignored = {s for s, _, severity, m in found if severity == "warning" and "ignored" in m}
    assert ignored == {"requirements", "apt"}
    assert "Dockerfile" in messages(dockerfile="FROM x\n", requirements="numpy\n")


def test_conflicts_follow_repo2dockers_order():
    found = problems(environment="dependencies:\n  - numpy\n", requirements="six\n",
                     runtime="python-3.11\n")
    assert {(s, severity) for s, _, severity, _ in found} == {
        ("requirements", "warning"), ("runtime", "warning")}
    assert problems(install_r="install.packages('x')\n")[0][:3] == ("install_r", None, "warning")
    assert problems(install_r="install.packages('x')\n", runtime="r-4.4-2025-01-15\n") == []
    julia = '[deps]\nIJulia = "7073ff75-c697-5162-941a-fcdaad2a7d2a"\n'
    assert ("runtime", None, "warning") in [
        f[:3] for f in problems(julia=julia, runtime="r-4.4-2025-01-15\n")]
