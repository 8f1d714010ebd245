"""Which environments the gallery shows to whom, and searching them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..engine.catalog import EnvironmentImage, image_labels
from .packages import normalize
from .store import Manifest


def with_record(env: EnvironmentImage, record) -> EnvironmentImage:
    """The image's labels, updated by what its owner changed since the build (the service's
    Environment record: display name, description, public, owner), if there is a record."""
    if record is None:
        return env
    labels = dict(env.labels)
    labels.update(image_labels(display_name=record.display_name or "",
                               description=record.description or "",
                               public="true" if record.public else "false",
                               owner=record.owner or env.label("owner")))
    return dataclasses.replace(env, labels=labels)


def shown(env: EnvironmentImage, user: str, admin: bool, show: str) -> bool:
    """``show`` is the admin's ``rees.gallery.show``: every environment the viewer may
    launch ("all"), or only those marked public ("public")."""
    if show == "public":
        return env.public
    return env.visible_to(user, admin)


@dataclass
class GalleryEntry:
    env: EnvironmentImage
    manifest: Manifest | None
    problem: str = ""  # why the environment's files could not be read

    def packages(self) -> dict[str, list[str]]:
        return self.manifest.packages if self.manifest else {}

    def package_names(self) -> list[str]:
        names: list[str] = []
        for group in self.packages().values():
            names += [n for n in group if n not in names]
        return names

    def search_text(self) -> str:
        env = self.env
        fields = [env.name, env.display_name, env.label("description"), env.label("repo"),
                  env.label("owner"), *self.package_names()]
        return " ".join(fields).lower()

    def matches(self, query: str = "", repo: str = "", package: str = "") -> bool:
        """Every word of ``query`` appears somewhere; ``repo`` and ``package`` are exact."""
        text = self.search_text()
        if any(word not in text for word in query.lower().split()):
            return False
        if repo and self.env.label("repo") != repo:
            return False
        if package and normalize(package) not in {normalize(n) for n in self.package_names()}:
            return False
        return True
