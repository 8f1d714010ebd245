"""Indexing real environment images: files copied out without running them, cached by id.

``build_environment_image`` makes an image as a build labels one, so gallery tests don't
wait for repo2docker.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid

import docker
import pytest

from tests.helpers import notebook_json
from tljh_rees.engine.images import DockerImages, image_tag, provenance_labels
from tljh_rees.gallery.files import EXTRACT_LABEL
from tljh_rees.gallery.store import Gallery


def build_environment_image(base_image: str, files: dict, *, name: str | None = None,
                            dockerfile_extra: str = "", target: str = "/home/jovyan",
                            **labels) -> tuple[str, str]:
    """Build a labelled environment image holding ``files`` (path -> str/bytes) in its
    home; returns (environment name, image tag)."""
    name = name or f"gal-{uuid.uuid4().hex[:8]}"
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    fields = {"environment": name, "repo": "https://example.org/r.git",
              "ref": "main", "commit": commit,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "build_id": uuid.uuid4().hex}
    fields.update(labels)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = (f"FROM {base_image}\nCOPY --chown=1000:1000 repo/ {target}/\n"
                      f"{dockerfile_extra}")
        entries = {"Dockerfile": dockerfile, **{f"repo/{p}": c for p, c in files.items()}}
        if not files:
            entries["repo/.keep"] = ""
        for path, content in entries.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = image_tag(name, commit)
    docker.from_env().images.build(fileobj=context, custom_context=True, tag=tag,
                                   labels=provenance_labels(**fields), rm=True, forcerm=True)
    return name, tag


@pytest.fixture
def environment_images(base_image):
    """Factory of labelled environment images, removed after the test."""
    tags = []

    def make(files: dict, **kwargs) -> tuple[str, str]:
        name, tag = build_environment_image(base_image, files, **kwargs)
        tags.append(tag)
        return name, tag

    yield make
    client = docker.from_env()
    for tag in tags:
        try:
            client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


def make_gallery(tmp_path, **limits) -> Gallery:
    return Gallery(lambda: docker.APIClient(version="auto"),
                   cache_dir=str(tmp_path / "gallery"), **limits)


def image_id(tag: str) -> str:
    return docker.from_env().images.get(tag).id


def no_extract_containers() -> bool:
    return not docker.from_env().containers.list(all=True,
                                                 filters={"label": EXTRACT_LABEL})


async def test_index_finds_notebooks_readme_packages_and_skips_the_rest(
        environment_images, tmp_path):
    big = notebook_json("Big", output="x" * 200_000)
    name, tag = environment_images({
        "README.md": "# The project\n",
        "requirements.txt": "numpy\npandas>=2\n",
        "apt.txt": "graphviz\n",
        "intro.ipynb": notebook_json("Intro"),
        "chapters/one.ipynb": notebook_json("One"),
        "chapters/figure.png": b"\x89PNG\r\n\x1a\n",
        "big.ipynb": big,
        ".ipynb_checkpoints/intro-checkpoint.ipynb": notebook_json("Old"),
        "data/table.csv": "a,b\n1,2\n",
    })
    gallery = make_gallery(tmp_path, max_notebook_bytes=100_000)
    manifest = await gallery.manifest(image_id(tag))

    assert [n.path for n in manifest.notebooks] == ["big.ipynb", "intro.ipynb",
                                                    "chapters/one.ipynb"]
    big_entry = manifest.notebook("big.ipynb")
    assert big_entry.size == len(big.encode()) and not big_entry.stored
    assert manifest.notebook("intro.ipynb").stored
    assert manifest.readme == "README.md"
    assert manifest.packages == {"python": ["numpy", "pandas"], "apt": ["graphviz"]}
    assert manifest.places.repo_dir == "/home/jovyan"
    # kept: what the gallery shows; not kept: data, hidden folders, too-large notebooks
    assert gallery.file_path(manifest, "chapters/figure.png")
    assert gallery.file_path(manifest, "data/table.csv") is None
    assert gallery.file_path(manifest, "big.ipynb") is None
    assert gallery.file_path(manifest, "../manifest.json") is None
    assert no_extract_containers()


async def test_repo_dir_comes_from_the_image(environment_images, tmp_path):
    """REPO_DIR (as repo2docker sets it) says where the repository is, not HOME."""
    name, tag = environment_images({"nb.ipynb": notebook_json("Elsewhere")},
                                   target="/srv/repo",
                                   dockerfile_extra="ENV REPO_DIR=/srv/repo\nWORKDIR /srv/repo\n")
    manifest = await make_gallery(tmp_path).manifest(image_id(tag))
    assert manifest.places.repo_dir == "/srv/repo"
    assert [n.path for n in manifest.notebooks] == ["nb.ipynb"]
    assert manifest.places.server_path("nb.ipynb") == "nb.ipynb"


async def test_image_is_never_started(environment_images, tmp_path):
    """An image whose command would write a marker: indexing must not produce it."""
    name, tag = environment_images({"nb.ipynb": notebook_json("Quiet")},
                                   dockerfile_extra='CMD ["sh", "-c", "touch /tmp/ran"]\n')
    events_since = int(time.time()) - 1
    gallery = make_gallery(tmp_path)
    await gallery.manifest(image_id(tag))
    client = docker.from_env()
    started = [e for e in client.api.events(since=events_since, until=int(time.time()) + 1,
                                            decode=True,
                                            filters={"event": "start", "image": tag})]
    assert started == []
    assert no_extract_containers()


async def test_index_and_renderings_are_cached_per_image(environment_images, tmp_path):
    name, tag = environment_images({"nb.ipynb": notebook_json("Cached")})
    gallery = make_gallery(tmp_path)
    manifest = await gallery.manifest(image_id(tag))
    html = await gallery.notebook_html(manifest, "nb.ipynb")
    assert "Cached" in html

    def no_docker():
        raise AssertionError("the cache should have answered")

    again = Gallery(no_docker, cache_dir=gallery.cache_dir)
    assert (await again.manifest(image_id(tag))).notebooks == manifest.notebooks
    assert await again.notebook_html(manifest, "nb.ipynb") == html
    # other limits make a new index (a notebook kept or not depends on them)
    stricter = Gallery(lambda: docker.APIClient(version="auto"), cache_dir=gallery.cache_dir,
                       max_notebook_bytes=10)
    assert not (await stricter.manifest(image_id(tag))).notebook("nb.ipynb").stored


async def test_prune_forgets_removed_images(environment_images, tmp_path):
    name, tag = environment_images({"nb.ipynb": notebook_json("Gone")})
    gallery = make_gallery(tmp_path)
    ident = image_id(tag)
    await gallery.manifest(ident)
    os.makedirs(os.path.join(gallery.cache_dir, "deadbeef.partial-x"))
    present, _ = DockerImages(lambda: docker.APIClient(version="auto")).present()
    gallery.prune(set(present))
    assert os.listdir(gallery.cache_dir) == [ident.split(":")[1]]
    gallery.prune(set())
    assert os.listdir(gallery.cache_dir) == []


async def test_notebook_limit_is_reported(environment_images, tmp_path):
    files = {f"nb{i}.ipynb": notebook_json(str(i)) for i in range(5)}
    name, tag = environment_images(files)
    manifest = await make_gallery(tmp_path, max_notebooks=3).manifest(image_id(tag))
    assert len(manifest.notebooks) == 3 and manifest.notebooks_truncated
    assert json.loads(manifest.to_json())["notebooks_truncated"] is True


async def test_missing_repository_folder_is_an_empty_listing(environment_images, tmp_path):
    name, tag = environment_images({"nb.ipynb": notebook_json("Unseen")},
                                   dockerfile_extra="ENV REPO_DIR=/nowhere\n")
    manifest = await make_gallery(tmp_path).manifest(image_id(tag))
    assert manifest.places.repo_dir == "/nowhere"
    assert manifest.notebooks == [] and manifest.readme == ""
    assert no_extract_containers()
