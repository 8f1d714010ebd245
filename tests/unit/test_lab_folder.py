"""What of a folder the JupyterLab extension sends: git's ignore rules, the service's
limits, links, executable bits."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from tljh_rees.spawner import lab_extension_env
from tljh_rees_lab.folder import FolderError, IgnoreRules, check_limits, collect, zip_files

LIMITS = {"max_files": 10, "max_file_bytes": 100, "max_total_bytes": 150}


@pytest.mark.parametrize("rules, path, is_folder, ignored", [
    ("*.csv", "a.csv", False, True),
    ("*.csv", "deep/er/a.csv", False, True),
    ("*.csv", "a.csv.txt", False, False),
    ("/top.txt", "top.txt", False, True),
    ("/top.txt", "sub/top.txt", False, False),
    ("data/", "data", True, True),
    ("data/", "data", False, False),  # a file named data is not the folder data/
    ("a/b", "a/b", False, True),
    ("a/b", "x/a/b", False, False),  # a slash inside anchors the pattern
    ("**/cache", "x/y/cache", True, True),
    ("logs/**", "logs/a/b.txt", False, True),
    ("*.log\n!keep.log", "keep.log", False, False),
    ("*.log\n!keep.log", "other.log", False, True),
    ("# comment\n\n", "comment", False, False),
    ("f?le", "file", False, True),
    ("[abc].txt", "b.txt", False, True),
    ("[!abc].txt", "b.txt", False, False),
])
def test_gitignore_rules(rules, path, is_folder, ignored):
    r = IgnoreRules()
    r.read("", rules)
    assert r.ignored(path, is_folder) is ignored


def test_rules_of_a_nested_gitignore_apply_below_its_folder():
    r = IgnoreRules()
    r.read("sub", "/local.txt\n*.tmp\n")
    assert r.ignored("sub/local.txt", False)
    assert not r.ignored("local.txt", False)
    assert r.ignored("sub/x/a.tmp", False)
    assert not r.ignored("a.tmp", False)


def write(root, path, content="x", mode=0o644):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(content)
    os.chmod(full, mode)


def test_collect_leaves_out_ignored_large_linked_and_cache_files(tmp_path):
    root = str(tmp_path)
    write(root, ".gitignore", "data/\n")
    write(root, "Dockerfile", "FROM x\n")
    write(root, "postBuild", "#!/bin/sh\n", mode=0o755)
    write(root, "data/big.csv", "1" * 50)
    write(root, "big.bin", "1" * 101)
    write(root, ".git/config", "[core]\n")
    write(root, ".ipynb_checkpoints/a-checkpoint.ipynb", "{}")
    write(root, "sub/.gitignore", "*.tmp\n")
    write(root, "sub/a.tmp", "t")
    write(root, "sub/keep.py", "print()\n")
    os.symlink("/etc/passwd", os.path.join(root, "passwd"))
    found = collect(root, LIMITS["max_file_bytes"])
    assert sorted(p for p, _, _ in found.files) == [
        ".gitignore", "Dockerfile", "postBuild", "sub/.gitignore", "sub/keep.py"]
    assert found.ignored == ["data/", "sub/a.tmp"]
    assert found.too_large == [("big.bin", 101)]
    assert found.links == ["passwd"]
    archive = zipfile.ZipFile(io.BytesIO(zip_files(root, found)))
    modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
    assert modes["postBuild"] & 0o111 and not modes["Dockerfile"] & 0o111
    assert archive.read("sub/keep.py") == b"print()\n"


def test_limits_are_checked_before_sending(tmp_path):
    root = str(tmp_path)
    with pytest.raises(FolderError, match="no files"):
        check_limits(collect(root, 100), LIMITS)
    for i in range(2):
        write(root, f"f{i}", "1" * 80)
    with pytest.raises(FolderError, match="160 bytes.*at most 150.*gitignore") as e:
        check_limits(collect(root, 100), LIMITS)
    assert e.value.status == 413
    with pytest.raises(FolderError, match="2 files; the service takes at most 1"):
        check_limits(collect(root, 100), {**LIMITS, "max_files": 1})
    with pytest.raises(FolderError, match="more than 1 files") as e:  # the walk stops
        collect(root, 100, max_files=1)
    assert e.value.status == 413


def test_the_extension_is_found_ahead_of_the_images_own_paths():
    env = lab_extension_env({"PYTHONPATH": "/srv/lib", "HOME": "/home/jovyan"},
                            "http://172.17.0.1:6789")
    assert env["PYTHONPATH"] == "/opt/tljh-rees-lab:/srv/lib"
    assert env["JUPYTER_PATH"] == "/opt/tljh-rees-lab/tljh_rees_lab/share"
    assert env["JUPYTER_CONFIG_PATH"] == "/opt/tljh-rees-lab/tljh_rees_lab/etc"
    assert env["TLJH_REES_ADDRESS"] == "http://172.17.0.1:6789"
    assert env["TLJH_REES_SERVICE_NAME"] == "rees"
