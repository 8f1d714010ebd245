"""The registry every node pulls environments from, and pushing builds to it.

By default the Hub runs Debian's ``docker-registry`` on the manager as a managed service
(so it lives and dies with the Hub, not with the rees service): TLS from the local CA in
``ca.py``, a user and a random password of its own (htpasswd, bcrypt) so that only this
project pushes, data under the state directory. An admin may name another registry and
its credentials instead (``rees.swarm.registry``). Secrets stay in files readable by root
and in the processes' memory; they are never logged or labelled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from dataclasses import dataclass
from typing import Callable

import bcrypt
import docker
import yaml

from .ca import ensure_server_certificate

USER = "tljh-rees"
CERTS_D = "/etc/docker/certs.d"  # where every engine on a machine looks for a registry's CA
REPOSITORY_PREFIX = "rees/"  # environments' repositories in the registry
# Pushes hold a shared lock, the registry's garbage collection an exclusive one
# (registry_gc.py): blobs of a push whose manifest is not there yet look unused. Every
# push happens on the manager (builds, the images the Hub pushes), so a lock file of this
# machine covers them all; in root's /run, not /tmp (no one else can plant it there).
LOCK_DIR = "/run/tljh-rees"


class RegistryUnavailable(RuntimeError):
    """The registry did not take or give an image; the message says which and why."""


@dataclass(frozen=True)
class Registry:
    address: str  # host:port, as image references name it
    username: str = ""
    password: str = ""  # never shown: see __repr__
    ca_file: str = ""  # the CA engines must trust; "" when the system's CAs do

    def __repr__(self) -> str:
        return f"Registry({self.address!r}, user={self.username!r})"

    def auth_config(self) -> dict | None:
        if not self.username:
            return None
        return {"username": self.username, "password": self.password,
                "serveraddress": self.address}

    def reference(self, image: str) -> str:
        """Where local ``image`` (``name:tag``) goes in this registry."""
        return f"{self.address}/{REPOSITORY_PREFIX}{image}"


def _password(path: str) -> str:
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    value = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def prepare_own_registry(state_dir: str, host: str, port: int) -> tuple[Registry, str]:
    """Files of the registry this project runs at ``host:port`` (certificate, password,
    htpasswd, config); returns it and the path of its config file."""
    folder = os.path.join(state_dir, "swarm", "registry")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    cert, key = ensure_server_certificate(os.path.join(folder, "tls"), host)
    password = _password(os.path.join(folder, "password"))
    htpasswd = os.path.join(folder, "htpasswd")
    entry = f"{USER}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n"
    if not _htpasswd_holds(htpasswd, password):
        _write_private(htpasswd, entry)
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": os.path.join(folder, "data")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"{host}:{port}", "tls": {"certificate": cert, "key": key},
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "auth": {"htpasswd": {"realm": "tljh-rees", "path": htpasswd}},
    }
    config_path = os.path.join(folder, "config.yml")
    _write_private(config_path, yaml.safe_dump(config))
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    return Registry(address, USER, password, os.path.join(folder, "tls", "ca.crt")), config_path


def _htpasswd_holds(path: str, password: str) -> bool:
    try:
        with open(path) as f:
            user, _, hashed = f.read().strip().partition(":")
    except OSError:
        return False
    return user == USER and bcrypt.checkpw(password.encode(), hashed.encode())


def _write_private(path: str, text: str) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def trust(registry: Registry, certs_d: str = CERTS_D) -> str | None:
    """Make this machine's engines trust the registry's CA; returns the file written."""
    if not registry.ca_file:
        return None
    folder = os.path.join(certs_d, registry.address)
    os.makedirs(folder, exist_ok=True)
    with open(registry.ca_file, "rb") as f:
        data = f.read()
    path = os.path.join(folder, "ca.crt")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except OSError:
        pass
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return path


def lock_path(address: str, folder: str = "") -> str:
    """The lock file of the registry at ``address`` on this machine."""
    return os.path.join(folder or LOCK_DIR,
                        "registry-" + re.sub(r"[^A-Za-z0-9.-]", "_", address) + ".lock")


@contextlib.contextmanager
def registry_lock(address: str, exclusive: bool, folder: str = ""):
    """Shared (a push) or exclusive (garbage collection) hold on the registry's lock.
    Exclusive does not wait: it yields False when a push holds the lock."""
    path = lock_path(address, folder)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def push(api, image: str, registry: Registry, on_line: Callable[[str], None]) -> str:
    """Push local ``image`` (``name:tag``, a docker ``APIClient``) to ``registry``; returns
    its reference there by digest (``host:port/rees/name:tag@sha256:…``). The local tag
    naming the registry is removed again: the local name stays the catalog's. Waits while
    the registry's garbage collection runs (``registry_lock``)."""
    with registry_lock(registry.address, exclusive=False):
        return _push(api, image, registry, on_line)


def _push(api, image: str, registry: Registry, on_line: Callable[[str], None]) -> str:
    target = registry.reference(image)
    repository, _, tag = target.rpartition(":")
    api.tag(image, repository, tag)
    digest, error = "", ""
    try:
        for entry in api.push(repository, tag, stream=True, decode=True,
                              auth_config=registry.auth_config()):
            if entry.get("error"):
                error = entry.get("errorDetail", {}).get("message") or entry["error"]
            digest = (entry.get("aux") or {}).get("Digest") or digest
            if entry.get("status") in ("Pushed", "Layer already exists"):
                pass  # one line per layer is noise in a build log
            elif entry.get("status") and not entry.get("progressDetail"):
                on_line(f"registry: {entry['status']}\n")
    except Exception as e:  # noqa: BLE001 (the engine's and the connection's own errors)
        error = str(e)
    finally:
        api.remove_image(target, noprune=True)
    if error or not digest:
        raise RegistryUnavailable(f"the registry {registry.address} did not take the image: "
                                  f"{error or 'no digest in the answer'}")
    return f"{repository}:{tag}@{digest}"


def by_digest(ref: str) -> tuple[str, str]:
    """(repository with its host, digest) of ``host:port/repo:tag@sha256:…`` as the
    catalog records it; ("", "") for a reference without a digest."""
    name, _, digest = ref.partition("@")
    if not digest:
        return "", ""
    if ":" in name.rsplit("/", 1)[-1]:  # a tag, not the host's port
        name = name.rsplit(":", 1)[0]
    return name, digest


def pull(api, ref: str, auth_config: dict | None) -> str:
    """Pull ``ref`` (by digest) onto this machine's engine; returns its image id."""
    name, digest = by_digest(ref)
    try:
        for entry in api.pull(name, tag=digest, stream=True, decode=True,
                              auth_config=auth_config):
            if entry.get("error"):
                why = (entry.get("errorDetail") or {}).get("message") or entry["error"]
                raise RegistryUnavailable(f"pulling {ref} from the registry failed: {why}")
        return api.inspect_image(f"{name}@{digest}")["Id"]
    except docker.errors.DockerException as e:
        raise RegistryUnavailable(f"pulling {ref} from the registry failed: "
                                  f"{getattr(e, 'explanation', '') or e}") from None
