"""Exports from a hostile builder's side: an image whose filesystem unpacks to far more
than the disk holds must be refused or stopped with a clear error, leaving nothing."""

from __future__ import annotations

import os
import shutil
import subprocess

import docker
import pytest
from traitlets.config import Config

from tests.export_support import build_image
from tljh_rees.export.convert import SifConverter
from tljh_rees.export.errors import ExportError, NoSpace
from tljh_rees.export.jobs import ExportManager
from tljh_rees.export.progress import Progress

pytestmark = pytest.mark.skipif(not shutil.which("siftool") or not shutil.which("mksquashfs"),
                                reason="needs siftool and squashfs-tools")
LOW_CAP = 16 * 1024**2


@pytest.fixture(scope="module")
def api():
    return docker.APIClient(version="auto", timeout=300)


@pytest.fixture(scope="module")
def sparse_image(tiny_image):
    """The tiny image and a 2 GiB sparse file: next to nothing on disk, 2 GiB of zeros in
    ``docker export``."""
    with open("/usr/bin/truncate", "rb") as f:  # dynamic, needs only the libc tiny has
        truncate = f.read()
    return build_image("rees-test/sparse",
                       f"FROM {tiny_image}\nCOPY truncate /bin/truncate\n"
                       'RUN ["/bin/truncate", "-s", "2G", "/big"]\n',
                       {"truncate": truncate})


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (needs root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def export_containers(api, image: str) -> list:
    image_id = api.inspect_image(image)["Id"]
    return [c for c in api.containers(all=True, filters={"label": "org.tljh-rees.export"})
            if c["ImageID"] == image_id]


def test_unpacking_past_the_configured_cap_stops_and_leaves_nothing(api, sparse_image,
                                                                     tmp_path):
    work, out = tmp_path / "work", tmp_path / "sparse.sif"
    config = Config({"SifConverter": {"max_unpack_bytes": LOW_CAP}})
    with pytest.raises(ExportError) as e:
        SifConverter(config=config, method="assemble", work_dir=str(work)).convert(
            api, sparse_image, str(out), Progress())
    message = str(e.value)
    assert f"unpacks to more than {LOW_CAP} bytes" in message, message
    assert "max_unpack_bytes" in message and sparse_image in message
    assert os.listdir(work) == [] and not out.exists()
    assert export_containers(api, sparse_image) == []


def test_the_services_exports_read_the_cap_from_its_config(api, sparse_image, tmp_path):
    config = Config({"SifConverter": {"max_unpack_bytes": LOW_CAP}})
    manager = ExportManager(lambda: api, str(tmp_path / "exports"), config=config)
    image_id = api.inspect_image(sparse_image)["Id"]
    job = {"id": image_id.split(":", 1)[1], "image": sparse_image, "image_id": image_id,
           "environment": "sparse", "commit": None, "push": False, "steps": []}
    with pytest.raises(ExportError, match=f"more than {LOW_CAP} bytes"):
        manager._export(api, job)
    assert sorted(os.listdir(manager.directory)) == ["work"]
    assert os.listdir(manager.work_dir) == []


def test_too_little_free_space_is_refused_before_unpacking(api, sparse_image, small_disk,
                                                           tmp_path):
    size = api.inspect_image(sparse_image)["Size"]
    out = tmp_path / "sparse.sif"
    with pytest.raises(NoSpace) as e:
        SifConverter(method="assemble", work_dir=str(small_disk)).convert(
            api, sparse_image, str(out), Progress())
    message = str(e.value)
    assert f"needs about {2 * size} bytes" in message and f"size of {size} bytes" in message
    free = int(message.split(" bytes are free")[0].rsplit(" ", 1)[1])
    assert free <= 3 * 1024**2
    assert os.listdir(small_disk) == [] and not out.exists()
    assert export_containers(api, sparse_image) == []
