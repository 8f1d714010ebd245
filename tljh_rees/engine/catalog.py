"""Environments as the images present say: labels in, environment records out.

Both the Hub's spawner and the rees service read environments this way, so an image
that exists is launchable even if the service's database was lost.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from .. import LABEL_PREFIX

ENVIRONMENT_LABEL = LABEL_PREFIX + "environment"
LABEL_FIELDS = ("environment", "display_name", "description", "repo", "ref", "commit", "owner",
                "created", "profile", "public", "build_id")


def image_labels(**fields: str) -> dict[str, str]:
    """The labels an environment's image carries (unknown fields are refused)."""
    unknown = set(fields) - set(LABEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown label fields: {sorted(unknown)}")
    return {LABEL_PREFIX + k: str(v) for k, v in fields.items() if v is not None}


def image_tag(environment: str, commit: str) -> str:
    return f"rees-{environment}:{commit[:12]}"


@dataclass(frozen=True)
class EnvironmentImage:
    """The newest image of one environment, as its labels describe it."""

    name: str
    image: str
    image_id: str
    size: int
    created_ts: int
    labels: dict

    def label(self, field: str, default: str = "") -> str:
        return self.labels.get(LABEL_PREFIX + field, default)

    @property
    def display_name(self) -> str:
        return self.label("display_name") or self.name

    @property
    def public(self) -> bool:
        return self.label("public", "true") != "false"

    def visible_to(self, user: str, admin: bool) -> bool:
        return self.public or admin or self.label("owner") == user


def environments_from_images(images: list[dict]) -> dict[str, EnvironmentImage]:
    """Newest labelled image per environment, from ``APIClient.images()`` entries."""
    found: dict[str, EnvironmentImage] = {}
    for entry in images:
        labels = entry.get("Labels") or {}
        name = labels.get(ENVIRONMENT_LABEL)
        tags = [t for t in entry.get("RepoTags") or [] if not t.endswith("<none>")]
        if not name or not tags:
            continue
        env = EnvironmentImage(name=name, image=tags[0], image_id=entry.get("Id", ""),
                               size=entry.get("Size", 0), created_ts=entry.get("Created", 0),
                               labels=labels)
        if name not in found or env.created_ts > found[name].created_ts:
            found[name] = env
    return found


def list_environments(api) -> dict[str, EnvironmentImage]:
    """Query the engine (a docker ``APIClient``) for environment images."""
    return environments_from_images(api.images(filters={"label": ENVIRONMENT_LABEL}))


def relabel(api, image: str, labels: dict[str, str], tag: str | None = None) -> None:
    """Tag ``image`` with new label values as ``tag`` (default: its own tag).

    Labels are the environments' source of truth, so a change of e.g. ``public`` must
    reach them for the spawner to see it; and an image of the same repository and commit
    can become another environment's without building again. It is a one-line build:
    the new image is a child of the old one with no layer of its own, costing no space.
    """
    pairs = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in labels.items())
    lines = [f"FROM {image}", f"LABEL {pairs}"]  # one step: the source is the parent
    for chunk in api.build(fileobj=io.BytesIO("\n".join(lines).encode()), tag=tag or image,
                           rm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"relabelling {image} failed: {chunk['error'].strip()}")


def image_of_commit(api, repo: str, commit: str) -> str | None:
    """Any environment's image built from ``repo`` at ``commit``, if one exists."""
    for entry in api.images(filters={"label": [f"{LABEL_PREFIX}commit={commit}",
                                               f"{LABEL_PREFIX}repo={repo}"]}):
        tags = [t for t in entry.get("RepoTags") or [] if not t.endswith("<none>")]
        if tags:
            return tags[0]
    return None
