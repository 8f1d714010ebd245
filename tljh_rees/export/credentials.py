"""Registry credentials: from the environment or the Docker config, never from flags.

``REES_REGISTRY_USERNAME`` and ``REES_REGISTRY_PASSWORD`` win; otherwise the entry for
the registry in ``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``), as written by
``docker login``. Nothing here puts a secret on a command line or in a log.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

USERNAME_ENV = "REES_REGISTRY_USERNAME"
PASSWORD_ENV = "REES_REGISTRY_PASSWORD"


@dataclass(frozen=True)
class RegistryLogin:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def login_from_env(environ=os.environ) -> RegistryLogin | None:
    username = environ.get(USERNAME_ENV, "")
    password = environ.get(PASSWORD_ENV, "")
    if username and password:
        return RegistryLogin(username, password)
    return None


def docker_config_path(environ=os.environ) -> str:
    directory = environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


@contextmanager
def auth_file(registry: str, environ=os.environ):
    """A Docker-style auth file for tools that read one (skopeo), or None.

    With credentials in the environment, a private temporary file (mode 0600) holds
    them for the duration of the block; otherwise the Docker config, if there is one.
    """
    login = login_from_env(environ)
    if login is None:
        path = docker_config_path(environ)
        yield path if os.path.exists(path) else None
        return
    with tempfile.TemporaryDirectory(prefix="rees-auth-") as tmp:
        path = os.path.join(tmp, "auth.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {registry: {"auth": login.basic()}}}, f)
        yield path
