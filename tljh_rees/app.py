"""The rees service: a Hub-managed Tornado application.

JupyterHub starts it (``python -m tljh_rees.app``) with its API token and URLs in the
environment and our traitlets config in ``TLJH_REES_CONFIG`` (see ``hubconfig``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal

import docker
from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from docker.errors import APIError, ImageNotFound
from sqlalchemy import or_, select
from traitlets import Dict, Integer, List, Type, Unicode, default
from traitlets.config import Application

from . import LABEL_PREFIX, SERVICE_NAME, __version__
from .builds.manager import BuildManager
from .builds.repo2docker import Repo2DockerBuilder
from .engine.catalog import ENVIRONMENT_LABEL
from .store.db import open_database
from .store.logs import LogStore
from .store.models import Build, Environment
from .hubapi import HubAPI
from .hubconfig import read_service_config

# Each module's ``routes()`` lists (path under the service prefix, handler class).
ROUTE_MODULES = [
    "tljh_rees.handlers.api",
    "tljh_rees.handlers.builds",
    "tljh_rees.handlers.launch",
    "tljh_rees.handlers.exports",
    "tljh_rees.handlers.specs",
    "tljh_rees.handlers.gallery",
    "tljh_rees.handlers.buildlog",
    "tljh_rees.handlers.pages",
]


class ReesService(Application):
    name = "tljh-rees"
    description = "Build and launch reproducible environments on a JupyterHub."

    ip = Unicode("127.0.0.1", config=True, help="Address the service listens on.")
    port = Integer(6789, config=True, help="Port the service listens on.")
    state_dir = Unicode("/opt/tljh/state/rees", config=True,
                        help="Database, build logs, specs and exports live here.")
    db_url = Unicode(config=True, help="SQLAlchemy URL of the service database.")
    profiles = List(Dict(), config=True, help="Machine profiles (see settings).")
    default_profile = Unicode("", config=True)
    gallery_show = Unicode("all", config=True, help="'all' or 'public' environments.")
    service_prefix = Unicode(config=True, help="URL prefix the Hub's proxy routes to us.")
    hub_api_url = Unicode(config=True)
    hub_prefix = Unicode(config=True, help="URL prefix of the Hub's pages (e.g. /hub/).")
    builder_class = Type(Repo2DockerBuilder, config=True,
                         help="What turns a checked-out repository into an image.")

    @default("db_url")
    def _db_url_default(self):
        return f"sqlite:///{os.path.join(self.state_dir, 'rees.sqlite')}"

    @default("service_prefix")
    def _prefix_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")

    @default("hub_api_url")
    def _hub_api_default(self):
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    @default("hub_prefix")
    def _hub_prefix_default(self):
        return url_path_join(self.base_url, "hub/")

    @property
    def base_url(self) -> str:
        return os.environ.get("JUPYTERHUB_BASE_URL", "/")

    def profile(self, name: str) -> dict | None:
        return next((p for p in self.profiles if p["name"] == name), None)

    def url(self, *parts: str) -> str:
        return url_path_join(self.service_prefix, *parts)

    def docker_api(self) -> docker.APIClient:
        """The service's one engine client: making one asks the engine for its API
        version, which every request would otherwise pay again."""
        if self._docker_api is None:
            self._docker_api = docker.APIClient(version="auto", timeout=120)
        return self._docker_api

    _docker_api = None

    # -- environments, as the database and the engine see them --------------------------

    def visible_environments(self, db, user: str, admin: bool) -> list[Environment]:
        query = select(Environment).order_by(Environment.name)
        if not admin:
            query = query.where(or_(Environment.public, Environment.owner == user))
        return list(db.scalars(query).all())

    def visible_environment_names(self, db, user: str, admin: bool) -> set[str]:
        return {env.name for env in self.visible_environments(db, user, admin)}

    def last_build(self, db, name: str) -> Build | None:
        return db.scalars(select(Build).where(Build.environment == name)
                          .order_by(Build.created.desc()).limit(1)).first()

    def servers_using(self, name: str) -> list[str]:
        """Names of the containers running from environment ``name``."""
        containers = self.docker_api().containers(
            filters={"label": f"{LABEL_PREFIX}server-environment={name}"})
        return [c["Names"][0].lstrip("/") for c in containers]

    def remove_environment(self, name: str) -> None:
        """Remove the environment's images and record (its build history stays).

        Images still used by a running server are only untagged: the server keeps
        running, and the engine frees the space once it stops.
        """
        api = self.docker_api()
        for image in api.images(filters={"label": f"{ENVIRONMENT_LABEL}={name}"}):
            for tag in image.get("RepoTags") or []:
                api.remove_image(tag, force=True)
            try:
                api.remove_image(image["Id"])
            except (ImageNotFound, APIError):
                pass
        with self.db() as db:
            env = db.get(Environment, name)
            if env is not None:
                db.delete(env)
                db.commit()

    def handlers(self) -> list:
        prefix = self.service_prefix
        routes = [(url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)]
        for module in ROUTE_MODULES:
            for path, handler in importlib.import_module(module).routes():
                routes.append((url_path_join(prefix, path), handler))
        return routes

    def make_app(self) -> web.Application:
        return web.Application(
            self.handlers(),
            rees=self,
            cookie_secret=os.urandom(32),
            static_path=os.path.join(os.path.dirname(__file__), "static"),
            static_url_prefix=url_path_join(self.service_prefix, "static/"),
            template_path=os.path.join(os.path.dirname(__file__), "templates"),
        )

    async def start_async(self, server=None) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.db = await asyncio.to_thread(open_database, self.db_url)
        self.logs = LogStore(parent=self, directory=os.path.join(self.state_dir, "logs"))
        self.builder = self.builder_class(parent=self)
        self.builds = BuildManager(self, parent=self)
        self.hub = HubAPI(self.hub_api_url)
        app = self.make_app()
        if server is None:
            server = app.listen(self.port, self.ip)
        else:
            server.request_callback = app  # take over the socket ``service.py`` opened early
        self.log.info("tljh-rees %s listening on %s:%s%s", __version__, self.ip, self.port,
                      self.service_prefix)
        await self.builds.start()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        watch = asyncio.create_task(self._stop_when_orphaned(stopping))
        await stopping.wait()
        watch.cancel()
        self.log.info("stopping: running builds will be re-queued at the next start")
        server.stop()
        await self.builds.shutdown()

    async def _stop_when_orphaned(self, stopping: asyncio.Event) -> None:
        """Exit if the Hub that started us is gone: a new Hub starts its own service,
        which must find the port free."""
        hub_pid = os.getppid()
        while os.getppid() == hub_pid:
            await asyncio.sleep(2)
        self.log.warning("the Hub (pid %s) is gone; stopping", hub_pid)
        stopping.set()

    def start(self) -> None:
        asyncio.run(self.start_async())


def make_service(argv=None) -> ReesService:
    logging.basicConfig(level=logging.INFO,
                        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    service = ReesService(config=read_service_config())
    service.log = logging.getLogger("tljh_rees")
    service.initialize(argv)
    return service


async def run(server) -> None:
    """Run on the socket ``tljh_rees.service`` opened (the Hub's usual entry point)."""
    await make_service([]).start_async(server)


def main(argv=None) -> None:
    make_service(argv).start()


if __name__ == "__main__":
    main()
