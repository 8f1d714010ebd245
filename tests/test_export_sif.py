"""SIF assembly from a real Docker image, compared with a SIF that Apptainer made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import docker
import pytest

from tests.export_support import (
    build_image,
    run_in_charliecloud,
    sif_header,
    sif_object_name,
    sif_objects,
    siftool,
    tiny_image_files,
    TINY_DOCKERFILE,
)
from tljh_rees.export.convert import SifConverter
from tljh_rees.export.errors import ExportError, MissingTool, NoSpace
from tljh_rees.export.progress import Progress

REFERENCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "..", "shared", "fixtures", "apptainer-reference-busybox_amd64.sif")
if not os.path.exists(REFERENCE):
    REFERENCE = "/work/shared/fixtures/apptainer-reference-busybox_amd64.sif"

pytestmark = pytest.mark.skipif(not shutil.which("siftool") or not shutil.which("mksquashfs"),
                                reason="needs siftool and squashfs-tools")


class RecordingProgress(Progress):
    def __init__(self):
        super().__init__()
        self.steps = []

    def step(self, name, total=None, unit="bytes"):
        super().step(name, total, unit)
        self.steps.append(name)


@pytest.fixture(scope="module")
def api():
    return docker.APIClient(version="auto", timeout=300)


@pytest.fixture(scope="module")
def tiny_sif(api, tiny_image, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sif") / "tiny.sif")
    progress = RecordingProgress()
    SifConverter(method="assemble").convert(api, tiny_image, out, progress)
    assert any("mksquashfs" in s for s in progress.steps), progress.steps
    return out


def test_descriptors_match_apptainer_reference(tiny_sif):
    ours, ref = sif_objects(tiny_sif), sif_objects(REFERENCE)
    ref_data = [r for r in ref if not r["type"].startswith("Signature")]  # ours is unsigned
    assert [(o["group"], o["link"], o["type"]) for o in ours] == \
        [(r["group"], r["link"], r["type"]) for r in ref_data]
    assert ours[-1]["type"] == "FS (Squashfs/*System/amd64)"
    assert all(o["start"] % 4096 == 0 for o in ours), ours
    assert [o["start"] for o in ours] == [r["start"] for r in ref_data]
    names = [sif_object_name(tiny_sif, o["id"]) for o in ours]
    ref_names = [sif_object_name(REFERENCE, r["id"]) for r in ref_data]
    assert names[:3] == ref_names[:3] == [".", "inspect-metadata.json", "oci-config.json"]
    assert names[3].startswith("squashfs-")


def test_header_matches_apptainer_reference(tiny_sif):
    ours, ref = sif_header(tiny_sif), sif_header(REFERENCE)
    for key in ("Launch Script", "Version", "Primary Architecture", "Descriptors Total",
                "Descriptors Offset"):
        assert ours[key] == ref[key], key
    with open(tiny_sif, "rb") as f:
        assert f.read(31) == b"#!/usr/bin/env run-singularity\n"
    assert os.stat(tiny_sif).st_mode & 0o111, "a SIF is executable"


def test_metadata_objects(tiny_sif, tiny_image):
    deffile = siftool("dump", "1", tiny_sif)
    assert deffile == f"BootStrap: docker-daemon\nFrom: {tiny_image}\n"
    inspect = json.loads(siftool("dump", "2", tiny_sif))
    ref_inspect = json.loads(siftool("dump", "2", REFERENCE))
    assert inspect["data"]["type"] == "container"
    assert set(ref_inspect["data"]["attributes"]) <= set(inspect["data"]["attributes"])
    attributes = inspect["data"]["attributes"]
    assert attributes["labels"]["org.example.kind"] == "tiny"
    assert attributes["labels"]["org.label-schema.build-arch"] == "amd64"
    assert "export GREETING=" in \
        attributes["environment"]["/.singularity.d/env/10-docker2singularity.sh"]
    oci = json.loads(siftool("dump", "3", tiny_sif))
    assert oci["Entrypoint"] == ["/bin/sh", "/greet.sh"]
    assert oci["Cmd"] == ["default arg"]
    assert "GREETING=hello 'quoted' " in oci["Env"]


def _tree(partition: str) -> set[str]:
    out = subprocess.run(["unsquashfs", "-lc", partition], capture_output=True, text=True,
                         check=True).stdout
    return {line.split("squashfs-root/", 1)[1] for line in out.splitlines()
            if "squashfs-root/" in line}


def test_singularity_tree_like_apptainers(tiny_sif, tmp_path):
    ours = str(tmp_path / "ours.sqfs")
    ref = str(tmp_path / "ref.sqfs")
    with open(ours, "w") as f:
        subprocess.run(["siftool", "dump", "4", tiny_sif], stdout=f, check=True)
    with open(ref, "w") as f:
        subprocess.run(["siftool", "dump", "4", REFERENCE], stdout=f, check=True)
    def meta(paths):
        return {p for p in paths if p.startswith(".singularity.d/") or
                p in {".exec", ".run", ".shell", ".test", "singularity", "environment"}}
    ours_meta, ref_meta = meta(_tree(ours)), meta(_tree(ref))
    # Only the SCIF app scripts are left out: images converted from Docker have no apps.
    assert ref_meta - ours_meta == {".singularity.d/env/94-appsbase.sh",
                                    ".singularity.d/env/95-apps.sh"}
    assert ours_meta - ref_meta == set()
    assert ".dockerenv" not in _tree(ours)


@pytest.mark.skipif(not shutil.which("ch-run"), reason="needs charliecloud-runtime")
def test_partition_runs_runscript_under_charliecloud(tiny_sif, tmp_path):
    partition = str(tmp_path / "root.sqfs")
    with open(partition, "w") as f:
        subprocess.run(["siftool", "dump", "4", tiny_sif], stdout=f, check=True)
    run = run_in_charliecloud(partition, "/.singularity.d/actions/run")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "greeting=hello 'quoted'  args=default arg"
    run = run_in_charliecloud(partition, "/.singularity.d/actions/run", "a b", "$c")
    assert run.stdout.strip() == "greeting=hello 'quoted'  args=a b $c", run.stderr
    run = run_in_charliecloud(partition, "/.singularity.d/actions/exec", "/bin/sh", "-c",
                              'echo "$LD_LIBRARY_PATH"')
    assert run.stdout.strip() == "/.singularity.d/libs", run.stderr


def test_missing_tool_names_the_package(api, tiny_image, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("tar", "siftool"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "x.sif"
    with pytest.raises(MissingTool) as e:
        SifConverter(method="assemble").convert(api, tiny_image, str(out), Progress())
    assert "squashfs-tools" in str(e.value) and "mksquashfs" in str(e.value)
    assert os.listdir(tmp_path) == ["bin"]


def test_apptainer_method_without_apptainer_is_a_clear_error(api, tiny_image, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExportError, match="Apptainer"):
        SifConverter(method="apptainer").convert(api, tiny_image, str(tmp_path / "x.sif"),
                                                 Progress())


def test_unknown_image_is_a_clear_error(api, tmp_path):
    with pytest.raises(ExportError, match="no Docker image named"):
        SifConverter(method="assemble").convert(api, f"rees-test/absent:{uuid.uuid4().hex}",
                                                str(tmp_path / "x.sif"), Progress())


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (needs root); nothing else of the machine's disk can fill."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture(scope="module")
def noisy_image(tiny_image):
    """The tiny image plus 6 MB that do not compress."""
    files = tiny_image_files()
    files["/noise.bin"] = os.urandom(6 * 1024 * 1024)
    return build_image("rees-test/noisy", TINY_DOCKERFILE, files)


def test_full_disk_leaves_no_file_under_the_final_name(api, noisy_image, small_disk,
                                                       tmp_path):
    out = small_disk / "noisy.sif"
    work = tmp_path / "work"
    with pytest.raises(NoSpace) as e:
        SifConverter(method="assemble", work_dir=str(work)).convert(
            api, noisy_image, str(out), Progress())
    assert "disk space" in str(e.value) and str(out) in str(e.value)
    assert os.listdir(small_disk) == []  # neither the SIF nor its temporary file
    assert os.listdir(work) == []  # the unpacked image is gone too


def test_full_work_disk_is_reported(api, noisy_image, small_disk, tmp_path):
    out = tmp_path / "noisy.sif"
    with pytest.raises(NoSpace):
        SifConverter(method="assemble", work_dir=str(small_disk)).convert(
            api, noisy_image, str(out), Progress())
    assert not out.exists()
    assert os.listdir(small_disk) == []
