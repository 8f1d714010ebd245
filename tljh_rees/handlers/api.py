"""The JSON API under ``{service prefix}/api/``."""

from __future__ import annotations

import asyncio
import platform

from tornado import web

from .. import BUILD_SCOPE, __version__
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


class UserHandler(APIHandler):
    """The caller as the service sees them: what a client (the JupyterLab extension) needs
    to offer building, or to say why not."""

    @web.authenticated
    def get(self):
        viewer = self.viewer
        profiles = self.catalog.profiles
        limits = self.settings["composer"].limits()
        self.write_json({
            "name": viewer.name, "admin": viewer.admin, "can_build": viewer.can_build,
            "build_reason": None if viewer.can_build else (
                f"Building environments needs the build permission ({BUILD_SCOPE}); ask a "
                "Hub admin."),
            "profiles": [{"name": p["name"], "description": p.get("description", "")}
                         for p in profiles.all],
            "default_profile": profiles.default,
            "import_limits": {"max_files": limits.max_files,
                              "max_file_bytes": limits.max_file_bytes,
                              "max_total_bytes": limits.max_total_bytes},
        })


def routes() -> list:
    return [
        ("api/health", HealthHandler),
        ("api/versions", VersionsHandler),
        ("api/user", UserHandler),
    ]
