"""Where a push goes: ``oras://HOST/NAME:TAG`` (a SIF) or ``docker://HOST/NAME:TAG`` (OCI)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import ExportError

TRANSPORTS = ("oras", "docker")
DEFAULT_TAG = "latest"
# Registry paths and tags as the OCI distribution spec allows them.
PATH_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Where a bare ``repo2singularity --push`` sends images, e.g. oras://ghcr.io/my-team.
REGISTRY_ENV = "REES_PUSH_REGISTRY"


@dataclass(frozen=True)
class PushTarget:
    transport: str
    registry: str
    path: str
    tag: str = DEFAULT_TAG

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.path}:{self.tag}"

    @property
    def host(self) -> str:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.endswith("]") \
            else self.registry
        return host.lower()

    @property
    def plain_http(self) -> bool:
        """Registries on this machine may speak plain http; all others need https."""
        return self.host in LOOPBACK_HOSTS

    def __str__(self) -> str:
        return f"{self.transport}://{self.reference}"

    def pull_command(self) -> str:
        flag = " --no-https" if self.plain_http else ""
        return f"apptainer pull{flag} {self}"


def parse_target(text: str) -> PushTarget:
    """``oras://HOST[:PORT]/PATH[:TAG]`` or ``docker://…``; the tag defaults to latest."""
    transport, sep, rest = text.partition("://")
    if not sep or transport not in TRANSPORTS:
        raise ExportError(f"push target {text!r}: expected oras://HOST/NAME:TAG (the SIF) "
                          "or docker://HOST/NAME:TAG (the OCI image)")
    registry, slash, path = rest.partition("/")
    if not slash or not HOST_RE.match(registry) or not path:
        raise ExportError(f"push target {text!r}: expected a registry host and a name, "
                          "like oras://registry.example.org/team/name:tag")
    if "@" in path:
        raise ExportError(f"push target {text!r}: push to a tag, not a digest")
    tag = DEFAULT_TAG
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if not PATH_RE.match(path):
        raise ExportError(f"push target {text!r}: the name {path!r} must be lowercase "
                          "letters, digits and separators (. _ -), in parts joined by /")
    if not TAG_RE.match(tag):
        raise ExportError(f"push target {text!r}: the tag {tag!r} may have letters, digits, "
                          "'.', '_' and '-' (at most 128, not starting with . or -)")
    return PushTarget(transport, registry, path, tag)


def default_target(image_name: str, environ=os.environ) -> PushTarget:
    """The target of a bare ``--push``: ``$REES_PUSH_REGISTRY/IMAGE_NAME[:latest]``."""
    prefix = environ.get(REGISTRY_ENV, "").strip().rstrip("/")
    if not prefix:
        raise ExportError(f"--push needs a registry: set {REGISTRY_ENV} (e.g. "
                          "oras://registry.example.org/my-team) or use --push-to TARGET")
    if "://" not in prefix:
        prefix = "oras://" + prefix
    return parse_target(f"{prefix}/{image_name}")
