"""The ``rees.swarm`` settings, validated like the rest of ``rees.*``.

Kept apart from settings.py so that the multi-node mode is one section with one parser;
``parse_swarm`` takes settings.py's reader (which collects every problem, naming the key)
as an argument instead of importing it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

KEYS = {"enabled", "advertise_address", "registry", "registry_port", "registry_username",
        "registry_password", "placement", "service_placement"}
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*=[A-Za-z0-9._-]+$")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class SwarmSettings:
    enabled: bool = False
    advertise_address: str = ""  # the manager's swarm address; "" = what the engine says
    registry: str = ""  # host[:port] of an admin's registry; "" = run one on the manager
    registry_port: int = 5000  # the port of the registry this project runs
    registry_username: str = ""
    # a secret: never logged, labelled or put in the catalog (not in repr either)
    registry_password: str = field(default="", repr=False)
    # profile name → node labels ("key=value") a server of that profile must run on
    placement: dict = field(default_factory=dict)
    # node labels of the nodes that run add-on services whose data need not persist
    service_placement: tuple = ()


def _label_list(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and _LABEL_RE.match(v)
                                              for v in value):
        raise ValueError(value)
    return tuple(value)


def _registry(value) -> str:
    if not isinstance(value, str) or not _REGISTRY_RE.match(value):
        raise ValueError(value)
    return value


def _address(value) -> str:
    return str(ipaddress.ip_address(str(value)))


def parse_swarm(r, raw: dict, path: str, checks: dict, profiles: tuple) -> SwarmSettings:
    """``raw`` (the ``rees.swarm`` section) through the reader ``r``; ``checks`` holds
    settings.py's ``bool``, ``port`` and ``string`` checks; ``profiles`` the site's."""
    r.unknown(raw, KEYS, path)
    placement = {}
    names = {p.name for p in profiles}
    for name, labels in r.section(raw, "placement", path).items():
        if name not in names:
            r.problems.append(f"{path}.placement.{name}: no profile of that name (profiles: "
                              f"{', '.join(sorted(names)) or 'none'})")
            continue
        placement[name] = r.get({name: labels}, name, f"{path}.placement", (), _label_list,
                                "a list of node labels like gpu=true")
    settings = SwarmSettings(
        enabled=r.get(raw, "enabled", path, False, checks["bool"], "true or false"),
        advertise_address=r.get(raw, "advertise_address", path, "", _address,
                                "the manager's IP address on the swarm"),
        registry=r.get(raw, "registry", path, "", _registry,
                       "a registry host[:port], like registry.example.org:5000"),
        registry_port=r.get(raw, "registry_port", path, 5000, checks["port"],
                            "a port number from 1 to 65535"),
        registry_username=r.get(raw, "registry_username", path, "", checks["string"],
                                "a user name"),
        registry_password=r.get(raw, "registry_password", path, "", checks["string"],
                                "a password"),
        placement=placement,
        service_placement=r.get(raw, "service_placement", path, (), _label_list,
                                "a list of node labels like services=true"),
    )
    if settings.registry and bool(settings.registry_username) != bool(
            settings.registry_password):
        r.problems.append(f"{path}.registry_password: expected both registry_username and "
                          "registry_password, or neither")
    if not settings.registry and settings.registry_username:
        r.problems.append(f"{path}.registry_username: only for an admin's registry "
                          f"({path}.registry); the registry this project runs makes its own")
    return settings
