"""Who may see and who may change an environment: the one place these rules live."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, true

from ..store.models import Environment


@dataclass(frozen=True)
class Viewer:
    """The person asking: a Hub user, with the rees permissions their token carries.

    ``admin``: administers every environment (Hub admins and ``custom:rees:admin``).
    ``builder``: may build (``custom:rees:build``, ``rees.builders``).
    ``servers``: the token may start and stop the user's own servers (a token limited to
    reading the service may not, though the service itself could).
    """

    name: str
    admin: bool = False
    builder: bool = False
    servers: bool = False

    @property
    def can_build(self) -> bool:
        return self.admin or self.builder

    def may_manage(self, owner: str) -> bool:
        """May change, rebuild, cancel or delete what ``owner`` made."""
        return self.admin or (self.can_build and owner == self.name)


def visible_to(viewer: Viewer):
    """The SQL condition for environments ``viewer`` may see and launch: public ones,
    their own, or all of them for admins."""
    if viewer.admin:
        return true()
    return or_(Environment.public.is_(True), Environment.owner == viewer.name)
