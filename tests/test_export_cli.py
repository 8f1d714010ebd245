"""``tljh-rees build`` and ``repo2singularity`` end to end: git repo → repo2docker → SIF →
registry, with the real commands as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.export_support import image_id, pull_sif, sha256, sif_header, sif_objects

REPO2SINGULARITY = [sys.executable, "-c",
                    "from tljh_rees.export.command import repo2singularity_main as m; m()"]
TLJH_REES = [sys.executable, "-m", "tljh_rees"]


def run(cmd, cwd, **env):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **env))


@pytest.fixture
def repo(git_repo, tiny_image):
    repo = git_repo()
    marker = uuid.uuid4().hex[:8]
    repo.commit({"Dockerfile": f"FROM {tiny_image}\nENV MARKER={marker}\n"
                               'CMD ["from the repo"]\n'})
    repo.marker = marker
    return repo


def remove_images(name):
    ids = subprocess.run(["docker", "images", "-q", name], capture_output=True,
                         text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *set(ids)], capture_output=True)


def test_build_writes_sif_and_pushes_both_ways(repo, registry, tmp_path):
    name = f"rees-cli-{uuid.uuid4().hex[:6]}"
    sif = tmp_path / "out.sif"
    oras_target = f"oras://{registry.host}/cli/{name}:v1"
    docker_target = f"docker://{registry.host}/cli/{name}-oci:v1"
    try:
        result = run([*TLJH_REES, "build", repo.url, "--image-name", name, "--sif", str(sif),
                      "--push", oras_target, "--push", docker_target], cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        commit = repo.git("rev-parse", "HEAD")
        image = f"{name}:{commit[:12]}"
        assert f"image: {image}" in result.stderr
        assert "==> Making the squashfs root filesystem" in result.stderr  # progress
        assert sif_header(str(sif))["Launch Script"] == "#!/usr/bin/env run-singularity"
        assert sif_objects(str(sif))[-1]["type"] == "FS (Squashfs/*System/amd64)"
        pulled = pull_sif(registry.host, f"cli/{name}", "v1", str(tmp_path / "pulled"))
        assert sha256(pulled) == sha256(str(sif))
        oci = registry.manifest(f"cli/{name}-oci", "v1").json()
        assert oci["config"]["digest"] == image_id(image)
        assert f"apptainer pull --no-https {oras_target}" in result.stderr

        # a second build of the same commit reuses the image
        again = run([*TLJH_REES, "build", repo.url, "--image-name", name], cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "built already; reusing it" in again.stderr
    finally:
        remove_images(name)


def test_repo2singularity_seed_form(repo, registry, tmp_path):
    """``repo2singularity --push --image-name NAME REPO`` as the seed design writes it."""
    name = f"rees-r2s-{uuid.uuid4().hex[:6]}"
    try:
        result = run([*REPO2SINGULARITY, "--push", "--image-name", name, repo.url],
                     cwd=tmp_path, REES_PUSH_REGISTRY=f"oras://{registry.host}/team")
        assert result.returncode == 0, result.stderr[-3000:]
        sif = tmp_path / f"{name}.sif"
        assert sif.is_file()
        pulled = pull_sif(registry.host, f"team/{name}", "latest", str(tmp_path / "pulled"))
        assert sha256(pulled) == sha256(str(sif))
        assert f"sha256 of {name}.sif: {sha256(str(sif))}" in result.stderr
    finally:
        remove_images(name)


def test_repo2singularity_push_without_registry_says_how(repo, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REES_PUSH_REGISTRY"}
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([*REPO2SINGULARITY, "--push", repo.url], cwd=work,
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "REES_PUSH_REGISTRY" in result.stderr
    assert not list(work.iterdir())


def test_credentials_in_the_url_are_refused(tmp_path):
    result = run([*TLJH_REES, "build", "https://user:tok3n-secret@example.org/x.git"],
                 cwd=tmp_path)
    assert result.returncode == 1
    assert "REES_GIT_USERNAME" in result.stderr
    assert "tok3n-secret" not in result.stderr


def test_bad_push_target(tmp_path):
    result = run([*TLJH_REES, "build", "/nonexistent", "--push", "s3://bucket/x"],
                 cwd=tmp_path)
    assert result.returncode == 1
    assert "expected oras://HOST/NAME:TAG" in result.stderr


def test_help_mentions_the_default_registry():
    result = subprocess.run([*REPO2SINGULARITY, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "REES_PUSH_REGISTRY" in result.stdout
