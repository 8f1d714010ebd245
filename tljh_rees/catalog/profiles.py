"""Machine profiles: which one applies to a launch, and the one message for a wrong name."""

from __future__ import annotations

from ..errors import InputError


class Profiles:
    """The admin's profiles (dicts with name, cpu, memory, description, label) and the
    site's default."""

    def __init__(self, profiles: list[dict], default: str = ""):
        self.all = list(profiles)
        self.default = default

    def get(self, name: str) -> dict | None:
        return next((p for p in self.all if p["name"] == name), None)

    def check(self, name) -> str:
        """``name`` if it is a profile (or empty, meaning 'the default'); else 400."""
        if name in (None, ""):
            return ""
        if not isinstance(name, str) or self.get(name) is None:
            names = ", ".join(p["name"] for p in self.all) or "none are configured"
            raise InputError("profile", f"unknown profile {name!r}; expected one of: {names}")
        return name

    def resolve(self, requested: str | None, environment_default: str = "") -> dict | None:
        """The profile a server gets: the one asked for, else the environment's default,
        else the site's. An environment's default that an admin has since removed falls
        back to the site's; a removed profile asked for by name is refused."""
        if requested:
            return self.get(self.check(requested))
        return self.get(environment_default) or self.get(self.default)

    def limits(self, name: str) -> dict:
        profile = self.get(name) or self.get(self.default) or {}
        return {"cpu": profile.get("cpu"), "memory": profile.get("memory")}
