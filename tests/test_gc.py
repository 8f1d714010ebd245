"""Disk garbage collection against the real engine: tiny images recorded in a real
catalog, a cap smaller than their sum, and ``tljh-rees gc`` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tljh_rees.catalog import Catalog, Profiles, Viewer
from tljh_rees.engine.images import BUILT_BY_LABEL
from tljh_rees.store.db import open_database
from tests.export_support import image_id

TLJH_REES = [sys.executable, "-m", "tljh_rees"]
ADMIN = Viewer("root", admin=True, builder=True)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=300)


def build(tag: str, base: str) -> str:
    """A tiny image the service could have built (its label), distinct by its label."""
    dockerfile = f"FROM {base}\nLABEL {BUILT_BY_LABEL}={uuid.uuid4().hex}\n"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, text=True,
                   capture_output=True, check=True, timeout=300)
    return image_id(tag)


def exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


@pytest.fixture
def site(tiny_image, tmp_path):
    """Environments old-a (plus an old build), b (never launched, built later), c (a
    container runs it), d (pinned), e (launched just now)."""
    key = uuid.uuid4().hex[:6]
    prefix = f"rees-gct{key}-"
    catalog = Catalog(open_database(f"sqlite:///{tmp_path / 'rees.sqlite'}"), Profiles([]))
    tags, sizes, container = {}, {}, None
    try:
        tags["a-old"] = f"{prefix}a:old"
        build(tags["a-old"], tiny_image)
        for day, name in enumerate("abcde", start=1):
            tag = tags[name] = f"{prefix}{name}:v1"
            ident = build(tag, tiny_image)
            with catalog.transaction() as db:
                env = catalog.claim(db, ADMIN, f"gct{key}-{name}", f"https://e.org/{name}")
                env.image, env.image_id, env.image_present = tag, ident, True
                env.built = T0 + timedelta(days=day)
                env.pinned = name == "d"
                env.last_launched = datetime.now(timezone.utc) if name == "e" else None
        for name, tag in tags.items():
            sizes[name] = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)
        container = docker("run", "-d", "-i", "--rm", "--entrypoint", "/bin/sh",
                           tags["c"]).stdout.strip()
        yield {"catalog": catalog, "dir": str(tmp_path), "tags": tags, "sizes": sizes,
               "key": key, "prefix": prefix}
    finally:
        if container:
            docker("rm", "-f", container, check=False)
        for tag in tags.values():
            docker("rmi", "-f", tag, check=False)


def gc(site, *args):
    cap = site["sizes"]["c"] + site["sizes"]["d"] + site["sizes"]["e"] + \
        site["sizes"]["e"] // 2
    result = subprocess.run(
        [*TLJH_REES, "gc", "--state-dir", site["dir"], "--image-prefix", site["prefix"],
         "--max-image-bytes", str(cap), "--high", "99", "--low", "98",
         "--build-cache-hours", "0", "--keep-days", "0", *args],
        capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_cap_removes_the_oldest_unlaunched_and_keeps_used_and_pinned(site):
    tags = site["tags"]
    out = gc(site, "--dry-run")
    lines = out.splitlines()
    would = [line for line in lines if line.startswith("would remove image")]
    assert [line.split()[3] for line in would] == [tags["a-old"], tags["a"], tags["b"]], out
    assert "old build of" in would[0] and "never launched" in would[1]
    assert f"kept {tags['c']}: a running container uses it" in out
    assert f"kept {tags['d']}: environment gct{site['key']}-d is pinned" in out
    assert "would free" in lines[-1] and "disk use" in lines[-1]
    assert all(exists(tag) for tag in tags.values())  # a dry run removes nothing

    out = gc(site)
    assert [line.split()[2] for line in out.splitlines() if line.startswith("removed image")] \
        == [tags["a-old"], tags["a"], tags["b"]], out
    assert "freed" in out.splitlines()[-1]
    assert [name for name, tag in tags.items() if exists(tag)] == ["c", "d", "e"]
    catalog = Catalog(open_database(f"sqlite:///{site['dir']}/rees.sqlite"), Profiles([]))
    key = site["key"]
    assert not catalog.get(ADMIN, f"gct{key}-a").launchable  # needs a rebuild
    assert not catalog.get(ADMIN, f"gct{key}-b").launchable
    assert catalog.get(ADMIN, f"gct{key}-c").launchable
    assert catalog.get(ADMIN, f"gct{key}-e").launchable
