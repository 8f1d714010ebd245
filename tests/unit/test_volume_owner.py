"""Whose a user's new volume becomes: the image's USER, resolved as Docker does but
from the image's account files as text (a builder writes them), never by running the
image; root and names the image does not have are refused."""

from __future__ import annotations

import os

import pytest

from tljh_rees.spawner import chown_folder, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/bash
# a comment
jovyan:x:1000:1000::/home/jovyan:/bin/bash
alice:x:1001:100::/home/alice:/bin/sh
broken-line
toor:x:0:0::/root:/bin/sh
"""
GROUP = "root:x:0:\nusers:x:100:\nstaff:x:50:alice\n"


@pytest.mark.parametrize("spec, expected", [
    ("jovyan", (1000, 1000)),
    ("alice", (1001, 100)),
    ("1000", (1000, 1000)),      # a number takes its entry's group
    ("4242", (4242, 0)),         # a number without an entry: group 0, as Docker does
    ("alice:staff", (1001, 50)),
    ("jovyan:77", (1000, 77)),
    ("1000:100", (1000, 100)),
    ("", (0, 0)),                # no USER: root (the spawner refuses it)
    ("root", (0, 0)),
    ("toor", (0, 0)),            # another name for uid 0 is still root
])
def test_users_resolve_as_docker_runs_them(spec, expected):
    assert resolve_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize("spec, missing", [
    ("mallory", "'mallory' is not in the image's /etc/passwd"),
    ("jovyan:wheel", "'wheel' is not in the image's /etc/group"),
    ("broken-line", "'broken-line'"),
])
def test_names_the_image_lacks_are_refused_by_name(spec, missing):
    with pytest.raises(LookupError, match=missing):
        resolve_user(spec, PASSWD, GROUP)


def test_a_name_without_an_account_file_is_refused():
    with pytest.raises(LookupError):
        resolve_user("jovyan", None, None)


def test_chown_folder_changes_the_folder_not_a_link(tmp_path):
    folder = tmp_path / "_data"
    folder.mkdir()
    chown_folder(str(folder), 1234, 5678)
    assert (os.stat(folder).st_uid, os.stat(folder).st_gid) == (1234, 5678)
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        chown_folder(str(link), 1234, 5678)
    assert os.stat(target).st_uid == os.getuid()
    with pytest.raises(OSError):
        chown_folder("", 1234, 5678)  # a volume driver that gives no folder
