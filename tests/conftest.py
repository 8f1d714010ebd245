"""Fixtures of the integration tier's export tests: a tiny image and a local registry."""

from __future__ import annotations

import shutil

import pytest

from tests.export_support import TINY_DOCKERFILE, LocalRegistry, build_image, tiny_image_files


@pytest.fixture(scope="session")
def tiny_image(engine):
    """A ~2 MB image: dash, libc, /greet.sh as ENTRYPOINT, a CMD, ENV and a label."""
    return build_image("rees-test/tiny", TINY_DOCKERFILE, tiny_image_files())


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if not shutil.which("docker-registry"):
        pytest.skip("docker-registry is not installed (Debian package docker-registry)")
    reg = LocalRegistry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    reg.stop()
