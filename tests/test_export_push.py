"""Pushes to a real registry (Debian's docker-registry on 127.0.0.1), pulled back."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid

import docker
import pytest

from tests.export_support import LocalRegistry, image_id, pull_sif, sha256
from tljh_rees.export.convert import SifConverter
from tljh_rees.export.errors import RegistryError
from tljh_rees.export.progress import Progress
from tljh_rees.export.push import (
    SIF_CONFIG_MEDIA_TYPE,
    SIF_LAYER_MEDIA_TYPE,
    push_image,
    push_sif,
)
from tljh_rees.export.targets import parse_target

pytestmark = pytest.mark.skipif(not shutil.which("docker-registry"),
                                reason="needs Debian's docker-registry")


class Recorder(Progress):
    def __init__(self):
        super().__init__()
        self.advances = []
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    def advance(self, done):
        super().advance(done)
        self.advances.append((self.name, done))


@pytest.fixture(scope="module")
def tiny_sif(tiny_image, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("push") / "tiny.sif")
    SifConverter(method="assemble").convert(docker.APIClient(version="auto"), tiny_image,
                                            out, Progress())
    return out


def test_oras_push_pulls_back_identical(registry, tiny_sif, tmp_path):
    name = f"rees/tiny-{uuid.uuid4().hex[:6]}"
    progress = Recorder()
    target = parse_target(f"oras://{registry.host}/{name}:v1")
    digest = push_sif(tiny_sif, target, progress, chunk_size=256 * 1024)
    assert digest.startswith("sha256:")
    uploads = [done for step, done in progress.advances if step.startswith("Uploading")]
    assert len(uploads) >= 4, "the SIF went up in several chunks"
    assert uploads[-1] == os.path.getsize(tiny_sif)

    manifest = registry.manifest(name, "v1").json()
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == SIF_CONFIG_MEDIA_TYPE
    assert manifest["config"]["size"] == 2
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SIF_LAYER_MEDIA_TYPE
    assert layer["annotations"]["org.opencontainers.image.title"] == "tiny.sif"

    pulled = pull_sif(registry.host, name, "v1", str(tmp_path))
    assert sha256(pulled) == sha256(tiny_sif)
    assert layer["digest"] == "sha256:" + sha256(tiny_sif)


def test_oras_push_again_reuses_the_blob(registry, tiny_sif):
    name = f"rees/again-{uuid.uuid4().hex[:6]}"
    push_sif(tiny_sif, parse_target(f"oras://{registry.host}/{name}:a"), Progress())
    progress = Recorder()
    push_sif(tiny_sif, parse_target(f"oras://{registry.host}/{name}:b"), progress)
    assert "the registry has this SIF already" in progress.notes
    assert registry.manifest(name, "b").status_code == 200


def test_oci_push_keeps_the_image_id(registry, tiny_image):
    name = f"rees/tiny-oci-{uuid.uuid4().hex[:6]}"
    push_image(tiny_image, parse_target(f"docker://{registry.host}/{name}:v1"), Progress())
    manifest = registry.manifest(name, "v1").json()
    assert manifest["config"]["digest"] == image_id(tiny_image)
    pulled = f"{registry.host}/{name}:v1"
    subprocess.run(["docker", "pull", "-q", pulled], check=True, capture_output=True)
    try:
        assert image_id(pulled) == image_id(tiny_image)
    finally:
        subprocess.run(["docker", "rmi", pulled], capture_output=True)


def _htpasswd(user: str, password: str) -> str | None:
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except (ImportError, AttributeError, ValueError):
        return None
    return f"{user}:{hashed}\n" if hashed and hashed.startswith("$2") else None


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    entry = _htpasswd("alice", "s3cret-pass")
    if entry is None:
        pytest.skip("no bcrypt in this Python's crypt module")
    reg = LocalRegistry(str(tmp_path_factory.mktemp("private-registry")), htpasswd=entry)
    yield reg
    reg.stop()


@pytest.fixture
def no_login(monkeypatch, tmp_path):
    monkeypatch.delenv("REES_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("REES_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv("HOME", str(tmp_path))


def test_registry_refusals_are_clear(private_registry, tiny_sif, tiny_image, no_login,
                                     monkeypatch):
    target = parse_target(f"oras://{private_registry.host}/rees/private:v1")
    with pytest.raises(RegistryError, match="asks for a login.*REES_REGISTRY_USERNAME"):
        push_sif(tiny_sif, target, Progress())
    monkeypatch.setenv("REES_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("REES_REGISTRY_PASSWORD", "wrong")
    with pytest.raises(RegistryError, match="401") as e:
        push_sif(tiny_sif, target, Progress())
    assert "wrong" not in str(e.value)
    with pytest.raises(RegistryError, match="unauthorized|authentication"):
        push_image(tiny_image, parse_target(f"docker://{private_registry.host}/rees/p:v1"),
                   Progress())


def test_login_from_environment(private_registry, tiny_sif, tiny_image, no_login,
                                monkeypatch):
    monkeypatch.setenv("REES_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("REES_REGISTRY_PASSWORD", "s3cret-pass")
    push_sif(tiny_sif, parse_target(f"oras://{private_registry.host}/rees/env:v1"),
             Progress())
    push_image(tiny_image, parse_target(f"docker://{private_registry.host}/rees/env-oci:v1"),
               Progress())
    auth = ("alice", "s3cret-pass")
    assert private_registry.manifest("rees/env", "v1", auth=auth).status_code == 200
    oci = private_registry.manifest("rees/env-oci", "v1", auth=auth).json()
    assert oci["config"]["digest"] == image_id(tiny_image)


def test_login_from_docker_config(private_registry, tiny_sif, tiny_image, no_login,
                                  tmp_path, monkeypatch):
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    secret = base64.b64encode(b"alice:s3cret-pass").decode()
    (config_dir / "config.json").write_text(
        json.dumps({"auths": {private_registry.host: {"auth": secret}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    push_sif(tiny_sif, parse_target(f"oras://{private_registry.host}/rees/cfg:v1"),
             Progress())
    push_image(tiny_image, parse_target(f"docker://{private_registry.host}/rees/cfg-oci:v1"),
               Progress())
    auth = ("alice", "s3cret-pass")
    assert private_registry.manifest("rees/cfg", "v1", auth=auth).status_code == 200
    assert private_registry.manifest("rees/cfg-oci", "v1", auth=auth).status_code == 200


def test_unreachable_registry(tiny_sif):
    from tests.export_support import free_port

    target = parse_target(f"oras://127.0.0.1:{free_port()}/rees/x:v1")
    with pytest.raises(RegistryError, match="cannot reach the registry"):
        push_sif(tiny_sif, target, Progress())
