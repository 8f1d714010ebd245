"""The engine's images and containers, as the service uses them.

Images carry provenance labels (which build made them, from which repository and
commit) for people reading ``docker inspect``; nothing decides anything from them, as a
build controls its image's labels. Who may use an image is the catalog's business.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

from docker.errors import APIError, ImageNotFound, NotFound

from .. import LABEL_PREFIX

BUILT_BY_LABEL = LABEL_PREFIX + "build_id"  # present on every image the service built
LABEL_FIELDS = ("environment", "repo", "ref", "commit", "build_id", "created")
SERVER_ENVIRONMENT_LABEL = LABEL_PREFIX + "server-environment"  # set by the spawner


def provenance_labels(**fields: str) -> dict[str, str]:
    """Labels for a new image (unknown fields are refused)."""
    unknown = set(fields) - set(LABEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown label fields: {sorted(unknown)}")
    return {LABEL_PREFIX + k: str(v) for k, v in fields.items() if v is not None}


def repository(environment: str) -> str:
    return f"rees-{environment}"


def short_version(version: str) -> str:
    """12 characters naming a version: a commit's first ones, or (an archive record's
    ``<id>.v<n>``, whose start is the same for every version) a hash of the whole."""
    if len(version) == 40 and all(c in "0123456789abcdef" for c in version):
        return version[:12]
    return hashlib.sha256(version.encode()).hexdigest()[:12]


def image_tag(environment: str, commit: str) -> str:
    return f"{repository(environment)}:{short_version(commit)}"


@dataclass(frozen=True)
class ImageInfo:
    id: str
    size: int


@dataclass(frozen=True)
class BuiltImage:
    """One image the service built, with every tag it has (for garbage collection)."""

    id: str
    tags: tuple[str, ...]
    size: int
    created: float = 0.0  # seconds since the epoch


class Images:
    """What the build queue and the catalog need of an image store (see DockerImages;
    ``tljh_rees.fakes.FakeImages`` stands in for fast tests)."""

    def inspect(self, ref: str) -> ImageInfo | None:
        raise NotImplementedError

    def tag(self, source: str, tag: str) -> None:
        """Give the image ``source`` (id or tag) the tag ``tag`` (no build, no layer)."""
        raise NotImplementedError

    def untag(self, tag: str, force: bool = False) -> None:
        """Remove one tag; the image goes with its last tag unless a container uses it.
        Without ``force``, the last tag of an image a container uses is kept (to be
        removed at a later try); with it, the image stays only as long as the container."""
        raise NotImplementedError

    def remove_tags(self, environment: str, keep: str | None = None,
                    force: bool = False) -> None:
        """Remove ``environment``'s tags except ``keep`` (``force`` as for ``untag``)."""
        raise NotImplementedError

    def present(self) -> tuple[dict[str, int], dict[str, str]]:
        """(image id → size, tag → image id) of the images the service built."""
        raise NotImplementedError

    def servers_using(self, environment: str) -> list[str]:
        """Names of the containers running from ``environment``."""
        raise NotImplementedError

    def reachable(self) -> bool:
        """Whether the engine answers now (a failed build may have been its doing)."""
        return True

    def built_images(self) -> list[BuiltImage]:
        """Every image the service built, with its tags."""
        raise NotImplementedError

    def in_use(self) -> set[str]:
        """Ids of the images that running containers (any on the engine) use."""
        raise NotImplementedError

    def remove_image(self, image: BuiltImage) -> bool:
        """Remove ``image`` (all its tags), never from under a container; whether it is
        gone."""
        raise NotImplementedError


class DockerImages(Images):
    def __init__(self, api: Callable):
        """``api()`` returns the service's docker ``APIClient``."""
        self.api = api

    def inspect(self, ref: str) -> ImageInfo | None:
        try:
            info = self.api().inspect_image(ref)
        except ImageNotFound:
            return None
        return ImageInfo(info["Id"], info.get("Size") or 0)

    def tag(self, source: str, tag: str) -> None:
        name, _, version = tag.rpartition(":")
        self.api().tag(source, name, version, force=True)

    def untag(self, tag: str, force: bool = False) -> None:
        try:
            self.api().remove_image(tag, force=force)
        except (APIError, NotFound):
            pass  # gone already, or a running server uses it

    def remove_tags(self, environment: str, keep: str | None = None,
                    force: bool = False) -> None:
        api = self.api()
        for entry in api.images(name=repository(environment)):
            for tag in entry.get("RepoTags") or []:
                if tag != keep and tag.startswith(repository(environment) + ":"):
                    self.untag(tag, force)

    def present(self) -> tuple[dict[str, int], dict[str, str]]:
        sizes, tags = {}, {}
        for entry in self.api().images(filters={"label": BUILT_BY_LABEL}):
            sizes[entry["Id"]] = entry.get("Size") or 0
            for tag in entry.get("RepoTags") or []:
                tags[tag] = entry["Id"]
        return sizes, tags

    def servers_using(self, environment: str) -> list[str]:
        containers = self.api().containers(
            filters={"label": f"{SERVER_ENVIRONMENT_LABEL}={environment}"})
        return [c["Names"][0].lstrip("/") for c in containers]

    def built_images(self) -> list[BuiltImage]:
        return [BuiltImage(e["Id"], tuple(t for t in e.get("RepoTags") or []
                                          if t != "<none>:<none>"),
                           e.get("Size") or 0, float(e.get("Created") or 0))
                for e in self.api().images(filters={"label": BUILT_BY_LABEL})]

    def in_use(self) -> set[str]:
        return {c.get("ImageID") for c in self.api().containers() if c.get("ImageID")}

    def remove_image(self, image: BuiltImage) -> bool:
        api = self.api()
        for ref in (*image.tags, image.id):  # the id last: for an image left untagged
            try:
                api.remove_image(ref)  # never forced: a container's image stays
            except NotFound:
                pass
            except APIError:
                break  # a container uses it (or another tag appeared): keep it
        return self.inspect(image.id) is None

    def reachable(self) -> bool:
        try:
            self.api().ping()
            return True
        except Exception:  # the docker SDK's errors and requests' (connection refused)
            return False
