"""The JSON API under ``{service prefix}/api/``."""

from __future__ import annotations

import asyncio
import platform

from tornado import web

from .. import __version__
from .base import APIHandler

ENGINE_PING_SECONDS = 5


class HealthHandler(APIHandler):
    """Unauthenticated liveness: is the service up, can it reach Docker. The engine's own
    error text goes to the service log, not to anonymous callers."""

    async def get(self):
        try:
            await asyncio.wait_for(asyncio.to_thread(self.settings["docker_api"].ping),
                                   ENGINE_PING_SECONDS)
            engine = "ok"
        except Exception as e:  # any failure to reach the engine is a health fact
            self.log.warning("health: the Docker engine is unreachable: %s", e)
            engine = "unreachable"
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
