"""Parameter specs of add-on services: a type, a range and a default, checked one by one.

A spec turns what a template (or an admin's setting) gives into one normal form — whole
numbers stay ints, sizes become the exact text ``64M``, booleans bools — or raises
:class:`~tljh_rees.errors.InputError` naming the field and saying what is expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError
from ..settings import format_size, parse_size


@dataclass(frozen=True)
class Param:
    """One parameter; subclasses say what a good value is (``expected``) and normalize it."""

    default: object = None

    @property
    def expected(self) -> str:
        raise NotImplementedError

    def normalize(self, value):
        """The value in normal form; ``ValueError``/``TypeError`` if it is not good."""
        raise NotImplementedError

    def check(self, value, field: str):
        try:
            return self.normalize(value)
        except (TypeError, ValueError, OverflowError):  # JSON allows 1e400, "9" * 5000
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise InputError(field, f"expected {self.expected}, got {shown}") from None

    def describe(self) -> dict:
        """The spec as plain JSON (for forms and documentation)."""
        return {"type": type(self).__name__.lower(), "expected": self.expected,
                "default": self.default}


@dataclass(frozen=True)
class Int(Param):
    low: int = 0
    high: int = 0

    @property
    def expected(self) -> str:
        return f"a whole number from {self.low} to {self.high}"

    def normalize(self, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        if not self.low <= value <= self.high:
            raise ValueError(value)
        return value


@dataclass(frozen=True)
class Size(Param):
    low: str = "1M"
    high: str = "1G"

    @property
    def expected(self) -> str:
        return f"a size like {self.default} from {self.low} to {self.high}"

    def normalize(self, value) -> str:
        if isinstance(value, (bool, dict, list)) or value is None:
            raise TypeError(value)
        size = parse_size(value)
        if not parse_size(self.low) <= size <= parse_size(self.high):
            raise ValueError(value)
        return format_size(size)


@dataclass(frozen=True)
class Choice(Param):
    options: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        return f"one of {', '.join(self.options)}"

    def normalize(self, value) -> str:
        if value not in self.options:
            raise ValueError(value)
        return value


@dataclass(frozen=True)
class Name(Param):
    pattern: str = r"^[a-z_][a-z0-9_]{0,62}$"

    @property
    def expected(self) -> str:
        return ("a name of lowercase letters, digits and _, not starting with a digit, "
                "at most 63 characters")

    def normalize(self, value) -> str:
        if not isinstance(value, str) or not re.match(self.pattern, value):
            raise ValueError(value)
        return value


@dataclass(frozen=True)
class Bool(Param):
    @property
    def expected(self) -> str:
        return "true or false"

    def normalize(self, value) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "yes"):
            return True
        if text in ("false", "no"):
            return False
        raise ValueError(value)


def check_params(specs: dict[str, Param], params, where: str,
                 defaults: dict | None = None) -> dict:
    """``params`` checked against ``specs``, with every default filled in (``defaults``,
    already checked, replace the specs' own). ``where`` prefixes each field named."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InputError(where, f"expected an object of parameters ({', '.join(specs)})")
    for name in params:
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise InputError(f"{where}.{name}", f"unknown parameter {name!r}; expected "
                                                f"one of: {known}")
    defaults = defaults or {}
    checked = {}
    for name, spec in specs.items():
        if name in params and params[name] is not None:
            checked[name] = spec.check(params[name], f"{where}.{name}")
        else:
            checked[name] = defaults.get(name, spec.default)
    return checked
