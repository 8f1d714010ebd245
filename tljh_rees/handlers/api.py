"""The JSON API under ``{service prefix}/api/``."""

from __future__ import annotations

import platform

from tornado import web

from .. import __version__
from .base import APIHandler


class HealthHandler(APIHandler):
    """Unauthenticated liveness: is the service up, can it reach Docker."""

    def get(self):
        try:
            self.rees.docker_api().ping()
            engine = "ok"
        except Exception as e:  # any failure to reach the engine is a health fact
            engine = f"unreachable: {e}"
        self.write_json({"status": "ok" if engine == "ok" else "degraded", "docker": engine})


class VersionsHandler(APIHandler):
    @web.authenticated
    def get(self):
        import jupyterhub
        import repo2docker

        self.write_json({"tljh-rees": __version__, "jupyterhub": jupyterhub.__version__,
                         "repo2docker": repo2docker.__version__,
                         "python": platform.python_version()})


def routes() -> list:
    return [
        ("api/health", HealthHandler),
        ("api/versions", VersionsHandler),
    ]
