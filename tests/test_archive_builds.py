"""Archive records built into images for real: a Binder link's record (on a stand-in of
the archive, tests.archive_fakes) resolved, fetched and built by repo2docker through the
same step the build queue runs (``pipeline.fetch_and_build``), against the local engine.

The record holds a Dockerfile ``FROM`` the local base image (conda-forge is unreachable
here) that copies the record's files in, so the image shows which files were fetched.
Images are tagged with the whole version: its first 12 characters (``image_tag``) would
name every version of a HydroShare resource alike, and its last 12 may start with '.',
which repo2docker refuses in a tag.
"""

from __future__ import annotations

import subprocess
import uuid

import docker
import pytest

from tests.archive_fakes import DoiResolver, FakeHydroShare, FakeZenodo, zip_of
from tljh_rees.binder.archives import HydroShareProvider, ZenodoProvider
from tljh_rees.builds.pipeline import fetch_and_build
from tljh_rees.builds.repo2docker import Repo2DockerBuilder
from tljh_rees.engine.images import DockerImages

RESOURCE = "8f7c2f0341ef4180b0dbe97f59130756"


def record_files(base_image: str) -> dict[str, bytes]:
    return {"Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n".encode(),
            "data/survey.csv": b"site,count\nnorth,12\n"}


async def zenodo_link(base_image: str, servers: list):
    """A Zenodo record of one zip (unpacked, its top folder flattened), by concept DOI."""
    doi = DoiResolver()
    zenodo = FakeZenodo(doi)
    servers += [doi, zenodo]
    bundle = {f"study-1.0/{name}": content for name, content in record_files(base_image).items()}
    zenodo.publish("101", {"study-1.0.zip": zip_of(bundle)}, concept="100")
    provider = ZenodoProvider(base_url=zenodo.url, doi_resolver_url=doi.url,
                              public_addresses_only=False)
    return await provider.resolve("10.5281/zenodo.100")


async def hydroshare_link(base_image: str, servers: list):
    """A HydroShare resource (fetched by our own fetcher, not repo2docker's)."""
    hydroshare = FakeHydroShare()
    servers.append(hydroshare)
    hydroshare.publish(RESOURCE, "2024-01-02T03:04:05.1Z", record_files(base_image))
    hydroshare.preparing = 1
    provider = HydroShareProvider(base_url=hydroshare.url, bag_poll_interval=0.05,
                                  public_addresses_only=False)
    return await provider.resolve(RESOURCE)


@pytest.mark.parametrize("link", [zenodo_link, hydroshare_link])
async def test_an_archive_record_builds_into_an_image(base_image, tmp_path, link):
    servers: list = []
    tag = f"rees-archive-test-{uuid.uuid4().hex[:8]}"
    images = DockerImages(lambda: docker.APIClient(version="auto", timeout=120))
    try:
        resolved = await link(base_image, servers)
        lines: list[str] = []
        built = await fetch_and_build(
            resolved.source, resolved.version, str(tmp_path), Repo2DockerBuilder(), images,
            image_for=lambda version: f"{tag}:{version}",  # the whole version (see below)
            labels_for=lambda version: {"org.tljh-rees.environment": tag},
            reuse=lambda version: None, on_line=lines.append)
        assert built.commit == resolved.version and not built.reused
        assert built.image == f"{tag}:{resolved.version}"
        assert built.image_id == images.inspect(built.image).id
        shown = subprocess.run(["docker", "run", "--rm", "--entrypoint", "cat", built.image,
                                "/home/jovyan/data/survey.csv"], capture_output=True,
                               text=True, timeout=120)
        assert shown.stdout == "site,count\nnorth,12\n", shown.stderr
        assert any(f"version {resolved.version}" in line for line in lines)  # the fetch's own
    finally:
        subprocess.run(["docker", "rmi", "-f", *_tags(tag)], capture_output=True)
        for server in servers:
            server.close()


def _tags(repository: str) -> list[str]:
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                          repository], capture_output=True, text=True).stdout
    return out.split() or [repository]
