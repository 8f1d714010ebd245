"""Credentials for a private repository: used for fetching, then dropped."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field


@dataclass
class Credentials:
    """Username and token for a private repository: used for the clone, then dropped."""

    username: str
    password: str = field(repr=False)

    def secrets(self) -> list[str]:
        """The strings that must never be shown, in every form they could appear in."""
        forms = set()
        for value in (self.password, self.username if self.password else ""):
            if value and len(value) >= 4:
                forms |= {value, urllib.parse.quote(value, safe=""),
                          urllib.parse.quote_plus(value)}
        return sorted(forms, key=len, reverse=True)
