"""A gallery entry (an environment and the index of its files), and searching them."""

from __future__ import annotations

from dataclasses import dataclass

from ..store.models import Environment
from .packages import normalize
from .store import Manifest


@dataclass
class GalleryEntry:
    env: Environment
    manifest: Manifest | None
    problem: str = ""  # why the environment's files could not be read

    @property
    def display_name(self) -> str:
        return self.env.display_name or self.env.name

    def packages(self) -> dict[str, list[str]]:
        return self.manifest.packages if self.manifest else {}

    def package_names(self) -> list[str]:
        names: list[str] = []
        for group in self.packages().values():
            names += [n for n in group if n not in names]
        return names

    def search_text(self) -> str:
        env = self.env
        fields = [env.name, env.display_name, env.description, env.repo, env.owner,
                  *self.package_names()]
        return " ".join(fields).lower()

    def matches(self, query: str = "", repo: str = "", package: str = "") -> bool:
        """Every word of ``query`` appears somewhere; ``repo`` and ``package`` are exact."""
        text = self.search_text()
        if any(word not in text for word in query.lower().split()):
            return False
        if repo and self.env.repo != repo:
            return False
        if package and normalize(package) not in {normalize(n) for n in self.package_names()}:
            return False
        return True
