"""Stand-ins for the engine and the builder, for fast tests of the queue and the
catalog (``tests/unit``). The real ones are tested against Docker and repo2docker.

They keep the contracts of :class:`~tljh_rees.engine.images.Images`,
:class:`~tljh_rees.builds.builder.Builder` and :class:`~tljh_rees.builds.sources.Source`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

from .builds.builder import BuildFailed, Builder
from .builds.sources import Source
from .engine.images import BuiltImage, ImageInfo, Images, repository


class FakeImages(Images):
    def __init__(self):
        self.ids: dict[str, str] = {}  # tag -> id
        self.sizes: dict[str, int] = {}  # id -> size
        self.running: dict[str, list[str]] = {}  # environment -> server names
        self.used: set[str] = set()  # ids of images running containers use
        self.created: dict[str, float] = {}  # id -> when it was made

    def add(self, tag: str, content: str) -> str:
        image_id = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
        self.ids[tag] = image_id
        self.sizes[image_id] = len(content)
        self.created.setdefault(image_id, float(len(self.created)))
        return image_id

    def inspect(self, ref: str) -> ImageInfo | None:
        image_id = self.ids.get(ref, ref)
        return ImageInfo(image_id, self.sizes[image_id]) if image_id in self.sizes else None

    def tag(self, source: str, tag: str) -> None:
        info = self.inspect(source)
        if info is None:
            raise LookupError(source)
        self.ids[tag] = info.id

    def untag(self, tag: str, force: bool = False) -> None:
        image_id = self.ids.pop(tag, None)
        if image_id and image_id not in self.ids.values():
            del self.sizes[image_id]

    def remove_tags(self, environment: str, keep: str | None = None,
                    force: bool = False) -> None:
        for tag in [t for t in self.ids if t.startswith(repository(environment) + ":")]:
            if tag != keep:
                self.untag(tag, force)

    def present(self) -> tuple[dict[str, int], dict[str, str]]:
        return dict(self.sizes), dict(self.ids)

    def servers_using(self, environment: str) -> list[str]:
        return list(self.running.get(environment, []))

    def built_images(self) -> list[BuiltImage]:
        return [BuiltImage(i, tuple(sorted(t for t, v in self.ids.items() if v == i)), size,
                           self.created.get(i, 0.0)) for i, size in self.sizes.items()]

    def in_use(self) -> set[str]:
        return set(self.used)

    def remove_image(self, image: BuiltImage) -> bool:
        if image.id in self.used:
            return False
        for tag in [t for t, v in self.ids.items() if v == image.id]:
            self.untag(tag)
        self.sizes.pop(image.id, None)
        return True


class FakeBuilder(Builder):
    """"Builds" an image whose id is derived from the files' contents; ``gate`` (an
    asyncio.Event) holds builds until set; ``fail`` makes them fail."""

    def __init__(self, images: FakeImages, **kwargs):
        super().__init__(**kwargs)
        self.images = images
        self.gate: asyncio.Event | None = None
        self.fail = ""
        self.runs: list[str] = []  # the image of every build that ran
        self.client_packages: dict[str, list[str]] = {}  # by image, when given

    async def build(self, source_dir, image, labels, on_line, on_process=lambda p: None,
                    client_packages=()):
        self.runs.append(image)
        if client_packages:
            self.client_packages[image] = list(client_packages)
        on_line(f"building {image}\n")
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise BuildFailed(self.fail)
        files = sorted(f for f in os.listdir(source_dir)
                       if os.path.isfile(os.path.join(source_dir, f)))
        content = "".join(open(os.path.join(source_dir, f)).read() for f in files)
        self.images.add(image, content + repr(sorted(labels.items())))


class FakeSource(Source):
    """A repository whose refs map to versions and files; ``resolving`` (an asyncio
    Event) holds ``resolve`` until set, as a slow remote would."""

    kind = "fake"

    def __init__(self, repo: str, versions: dict[str, str], private: bool = False):
        self.repo = repo
        self.versions = versions  # ref -> version; the version's file content is its name
        self._private = private
        self.resolving: asyncio.Event | None = None

    @property
    def private(self) -> bool:
        return self._private

    async def resolve(self, ref: str) -> str | None:
        if self.resolving is not None:
            await self.resolving.wait()
        return self.versions.get(ref)

    async def fetch(self, ref: str, dest: str, on_line=lambda line: None) -> str:
        version = self.versions.get(ref, ref)
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, "content"), "w") as f:
            f.write(f"{self.repo}@{version}")
        return version
