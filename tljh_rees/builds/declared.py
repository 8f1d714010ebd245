"""Add-on services a repository declares in ``.rees/services.json``.

The file holds the same list an environment's ``services`` take
(``[{"name", "version", "params"}]``). A build reads it from the fetched checkout; a
valid declaration becomes the environment's default services when the build completes,
and its kinds' client packages are installed by the build (``--appendix`` of
repo2docker's build packs). A declaration that is not valid never fails the build: the
log says why it was not taken, naming the field, and the environment keeps its services.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import InputError
from ..services.kinds import ServiceCatalog

DECLARATION = ".rees/services.json"
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Declared:
    """What a checkout declares: ``services`` (checked) or None, and a note for the log."""

    services: list[dict] | None
    note: str = ""


def read_declared(checkout: str, offer: ServiceCatalog) -> Declared:
    """The checked services ``checkout`` declares (None: no file, or refused with why)."""
    path = os.path.join(checkout, DECLARATION)
    if not os.path.lexists(path):
        return Declared(None)
    real = os.path.realpath(path)
    if os.path.islink(path) or os.path.islink(os.path.dirname(path)) \
            or not real.startswith(os.path.realpath(checkout) + os.sep) \
            or not os.path.isfile(real):
        return refused("not a regular file of the repository")
    if os.path.getsize(real) > MAX_BYTES:
        return refused(f"larger than {MAX_BYTES // 1024} kB")
    try:
        with open(real, encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError:
        return refused("not UTF-8 text")
    except ValueError as e:
        return refused(f"not valid JSON ({e})")
    try:
        services = offer.check(data, where="services")
    except InputError as e:
        return refused(f"{e.field}: {e.message}")
    names = ", ".join(f"{s['name']} {s['version']}" for s in services) or "none"
    return Declared(services, f"{DECLARATION} declares the add-on services: {names}; they "
                              "become the environment's default services")


def refused(why: str) -> Declared:
    return Declared(None, f"{DECLARATION} was not taken (the environment keeps its "
                          f"services; the build goes on): {why}")


def client_packages(services: list[dict] | None, offer: ServiceCatalog) -> list[str]:
    """The pip requirements of the declared services' clients, each once, in order."""
    packages: list[str] = []
    for service in services or ():
        for requirement in offer.kind(service["name"]).client_packages.get("pip", []):
            if requirement not in packages:
                packages.append(requirement)
    return packages
