"""The rees service: a Hub-managed Tornado application.

JupyterHub starts it (``python -m tljh_rees.service``) with its API token and URLs in the
environment. Its configuration comes, in this order, from the ``rees`` settings (passed
by ``hubconfig`` in ``TLJH_REES_CONFIG``) and from the admin's own files in
``config_dir``: ``rees_config.py``, then ``rees_config.d/*.py`` in name order — like
``jupyterhub_config.py``, and later files win. ``python -m tljh_rees.app --help-all``
lists every setting.

The service builds each collaborator once (:meth:`ReesService.collaborators`), hands
them to handlers by name through the Tornado settings, and starts and stops them here.
"""

from __future__ import annotations

import asyncio
import glob
import importlib
import logging
import os
import signal

import docker
import requests
from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Dict, Enum, Float, Integer, List, Type, Unicode, default
from traitlets.config import Application

from . import SERVICE_NAME, __version__
from .binder.links import BinderLinks
from .binder.providers import GIT_PROVIDERS
from .builds.builder import Builder
from .builds.manager import BuildManager
from .builds.orphans import ProcessNotes
from .builds.repo2docker import Repo2DockerBuilder
from .catalog import Catalog, Profiles
from .composer.preview import Previewer
from .composer.service import Composer
from .composer.store import SpecStore
from .engine.images import DockerImages
from .export.convert import SifConverter
from .export.jobs import ExportManager
from .gallery.store import Gallery
from .hubapi import HubAPI
from .hubconfig import read_service_config
from .hpc.settings import HpcSettings
from .launcher import Launcher
from .catalog.templates import Machine, TemplateCatalog
from .ondemand.applications import Applications
from .ondemand.culler import Culler
from .ondemand.pools import PoolManager
from .ondemand.temporary import TemporaryUsers
from .operations.gc import GarbageCollector, docker_disk_usage, note_launches
from .operations.metrics import Metrics
from .operations.quotas import Quotas
from .operations.samples import Sampler
from .services.kinds import ServiceCatalog
from .settings import machine_memory
from .store.db import open_database
from .store.logs import LogStore
from .swarm.capacity import SwarmMachine

# Each module's ``routes()`` lists (path under the service prefix, handler class).
ROUTE_MODULES = [
    "tljh_rees.handlers.api",
    "tljh_rees.handlers.builds",
    "tljh_rees.handlers.environments",
    "tljh_rees.handlers.launch",
    "tljh_rees.handlers.ondemand",
    "tljh_rees.handlers.exports",
    "tljh_rees.handlers.specs",
    "tljh_rees.handlers.gallery",
    "tljh_rees.handlers.pages",
    "tljh_rees.handlers.binder",
    "tljh_rees.handlers.metrics",
    "tljh_rees.handlers.openapi",  # last: its catch-all answers unknown api/ paths
]
CONFIG_FILE = "rees_config.py"
CONFIG_FOLDER = "rees_config.d"


class ReesService(Application):
    name = "tljh-rees"
    description = "Build and launch reproducible environments on a JupyterHub."
    classes = [BuildManager, Repo2DockerBuilder, LogStore, ExportManager, SifConverter,
               Gallery, Composer, SpecStore, Previewer, BinderLinks, Applications,
               PoolManager, Culler, GarbageCollector, Quotas, Sampler, *GIT_PROVIDERS]

    ip = Unicode("127.0.0.1", config=True, help="Address the service listens on.")
    port = Integer(6789, config=True, help="Port the service listens on.")
    state_dir = Unicode("/opt/tljh/state/rees", config=True,
                        help="Database, build logs, specs and exports live here.")
    config_dir = Unicode("", config=True,
                         help=f"Folder of the admin's {CONFIG_FILE} and {CONFIG_FOLDER}/ "
                              "(under TLJH: /opt/tljh/config); '' for none.")
    db_url = Unicode(config=True, help="SQLAlchemy URL of the service database.")
    profiles = List(Dict(), config=True, help="Machine profiles (see settings).")
    default_profile = Unicode("", config=True)
    gallery_show = Unicode("all", config=True, help="'all' or 'public' environments.")
    service_prefix = Unicode(config=True, help="URL prefix the Hub's proxy routes to us.")
    hub_api_url = Unicode(config=True)
    hub_prefix = Unicode(config=True, help="URL prefix of the Hub's pages (e.g. /hub/).")
    builder_class = Type(Repo2DockerBuilder, klass=Builder, config=True,
                         help="What turns a fetched repository into an image.")
    event_keepalive = Integer(
        15, config=True,
        help="Seconds of silence after which a build's event stream sends a comment, so "
             "proxies and clients keep the connection open during quiet build steps.")
    template_images = List(Unicode(), config=True,
                           help="Plain images templates may use (rees.templates.allowed_images).")
    hpc = Dict(config=True, help="The Slurm target (rees.hpc; HpcSettings.to_dict): "
                                 "launches asking for the cluster are checked against it.")
    services = Dict(config=True,
                    help="Add-on services this site offers, by kind (rees.services; "
                         "ServiceSettings.to_dict of each).")
    machine_cpus = Float(config=True, help="CPUs templates and pools are sized against "
                                           "(default: this machine's).")
    machine_memory = Integer(config=True, help="Bytes of memory templates and pools are "
                                               "sized against (default: this machine's).")
    machine_source = Enum(
        ["host", "swarm"], "host", config=True,
        help="What templates and pools are sized against: this machine (machine_cpus, "
             "machine_memory), or the swarm's usable nodes (multi-node mode).")
    engine_sync_interval = Integer(
        60, config=True,
        help="Seconds between looks at the engine's images, so the catalog notices an "
             "image removed by hand (also done at every start).")

    @default("db_url")
    def _db_url_default(self):
        return f"sqlite:///{os.path.join(self.state_dir, 'rees.sqlite')}"

    @default("machine_cpus")
    def _cpus_default(self):
        return float(os.cpu_count() or 1)

    @default("machine_memory")
    def _memory_default(self):
        return machine_memory() or 1024**3

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

    def load_admin_config(self) -> None:
        """The admin's Python config files, read after the ``rees`` settings."""
        if not self.config_dir:
            return
        files = [os.path.join(self.config_dir, CONFIG_FILE)]
        files += sorted(glob.glob(os.path.join(self.config_dir, CONFIG_FOLDER, "*.py")))
        for path in files:
            if os.path.isfile(path):
                self.log.info("reading %s", path)
                self.load_config_file(os.path.basename(path), os.path.dirname(path))

    # -- collaborators, built once --------------------------------------------------------

    def collaborators(self) -> dict:
        """Every part of the service, by the name handlers use for it."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        # One client (each new one asks the engine's version), for the engine DOCKER_HOST
        # names, as repo2docker's docker CLI and the Hub's spawner use.
        api = docker.APIClient(version="auto", timeout=120, **docker.utils.kwargs_from_env())
        images = DockerImages(lambda: api)
        services = ServiceCatalog.from_config(self.services)  # the site's add-on services
        catalog = Catalog(open_database(self.db_url), Profiles(self.profiles,
                                                                self.default_profile),
                          services)
        logs = LogStore(parent=self, directory=os.path.join(self.state_dir, "logs"))
        builder = self.builder_class(parent=self)
        builds = BuildManager(catalog, logs, builder, images,
                              ProcessNotes(os.path.join(self.state_dir, "running")),
                              parent=self)
        registry = getattr(builder, "registry", None) if builder.publishes else None
        exports = ExportManager(lambda: api, os.path.join(self.state_dir, "exports"),
                                registry=registry, pullable=catalog.registry_images,
                                parent=self)
        gallery = Gallery(lambda: api, os.path.join(self.state_dir, "gallery"), parent=self)
        composer = Composer(os.path.join(self.state_dir, "specs"), services, parent=self)
        preview = composer.previewer  # previews show what this builder will build
        preview.base_image = preview.base_image or getattr(builder, "base_image", "")
        preview.user_name = getattr(builder, "user_name", preview.user_name)
        preview.user_id = getattr(builder, "user_id", preview.user_id)
        builds.on_built.append(gallery.index_soon)
        builds.on_removed.append(exports.forget_environment)
        quotas = Quotas(parent=self)
        metrics = Metrics()
        builds.quotas = quotas
        builds.on_finished.append(metrics.build_finished)
        hub = HubAPI(self.hub_api_url)
        binder = BinderLinks(builds, parent=self)
        launcher = Launcher(catalog, hub, quotas, rebuild=builds.rebuild_removed,
                            hpc=HpcSettings.from_dict(self.hpc))
        launcher.on_ready.append(metrics.launch_ready)
        machine = SwarmMachine(api) if self.machine_source == "swarm" else \
            Machine(self.machine_cpus, self.machine_memory)
        templates = TemplateCatalog(catalog, machine, self.template_images, services)
        temporary = TemporaryUsers(templates, hub)
        pools = PoolManager(templates, temporary, hub, templates.machine, parent=self)
        applications = Applications(templates, temporary, pools, hub, launcher,
                                    self.base_url, self.hub_prefix, parent=self)
        culler = Culler(templates, temporary, hub, parent=self)
        disk_usage = docker_disk_usage(lambda: api)
        gc = GarbageCollector(catalog, images, disk_usage,
                              logs_dir=logs.directory, exports_dir=exports.directory,
                              registry=self._registry_collector(registry), parent=self)
        metrics.watch(queue_length=builds.queue_length,
                      pools=lambda: {t.name: pools.describe(t, p.size)["available"]
                                     for t, p in pools.pools()},
                      disk=catalog.present_images_bytes, active_users=hub.active_users)
        sampler = Sampler(catalog, builds.queue_length, disk_usage, parent=self)
        return {
            "docker_api": api, "images": images, "catalog": catalog, "logs": logs,
            "builder": builder, "builds": builds, "exports": exports, "gallery": gallery,
            "composer": composer, "launcher": launcher, "hub": hub, "binder": binder,
            "templates": templates, "pools": pools, "applications": applications,
            "culler": culler, "gc": gc, "quotas": quotas, "metrics": metrics,
            "sampler": sampler,
            "gallery_show": self.gallery_show, "event_keepalive": self.event_keepalive,
            "urls": ServiceUrls(self.service_prefix, self.hub_prefix, self.base_url),
        }

    def _registry_collector(self, registry):
        """Multi-node mode: the GC's part for the registry builds are pushed to."""
        if registry is None:
            return None
        from .swarm.registry_gc import RegistryCollector  # single-machine: never imported
        return RegistryCollector(registry, parent=self)

    def handlers(self) -> list:
        prefix = self.service_prefix
        routes = [(url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)]
        for module in ROUTE_MODULES:
            for path, handler in importlib.import_module(module).routes():
                routes.append((url_path_join(prefix, path), handler))
        return routes

    def make_app(self, parts: dict) -> web.Application:
        return web.Application(
            self.handlers(),
            cookie_secret=os.urandom(32),
            static_path=os.path.join(os.path.dirname(__file__), "static"),
            static_url_prefix=url_path_join(self.service_prefix, "static/"),
            template_path=os.path.join(os.path.dirname(__file__), "templates"),
            **parts,
        )

    # -- running --------------------------------------------------------------------------

    async def start_async(self, server=None) -> None:
        parts = await asyncio.to_thread(self.collaborators)
        app = self.make_app(parts)
        if server is None:
            server = app.listen(self.port, self.ip)
        else:
            server.request_callback = app  # take over the socket ``service.py`` opened early
        self.log.info("tljh-rees %s listening on %s:%s%s", __version__, self.ip, self.port,
                      self.service_prefix)
        builds = parts["builds"]
        await self._sync_with_engine(parts)
        parts["logs"].prune(keep=parts["catalog"].build_ids())
        await builds.start()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        tasks = [asyncio.create_task(self._stop_when_orphaned(stopping)),
                 asyncio.create_task(self._keep_in_step(parts)),
                 asyncio.create_task(parts["pools"].run(parts["applications"]
                                                        .anonymous_enabled)),
                 asyncio.create_task(parts["culler"].run()),
                 asyncio.create_task(self._collect_garbage(parts)),
                 asyncio.create_task(parts["sampler"].run())]
        await stopping.wait()
        for task in tasks:
            task.cancel()
        self.log.info("stopping: running builds will be re-queued at the next start")
        server.stop()
        await builds.shutdown()
        await parts["exports"].shutdown()
        await parts["pools"].shutdown()

    async def _sync_with_engine(self, parts: dict) -> None:
        """Tell the catalog which images the engine has (one listing of the engine)."""
        try:
            sizes, tags = await asyncio.to_thread(parts["images"].present)
        # an engine that is down raises requests' ConnectionError, which the docker SDK
        # does not wrap; uncaught, it ended _keep_in_step for the life of the service
        except (docker.errors.DockerException, requests.RequestException) as e:
            self.log.warning("cannot list the engine's images: %s", e)
            return
        for name in parts["catalog"].sync(sizes, tags,
                                          registry=parts["builder"].publishes):
            self.log.warning("environment %s: its image is gone; rebuild it", name)
        parts["gallery"].prune(set(sizes))

    async def _keep_in_step(self, parts: dict) -> None:
        while True:
            await asyncio.sleep(self.engine_sync_interval)
            await self._sync_with_engine(parts)

    async def _collect_garbage(self, parts: dict) -> None:
        """Every ``GarbageCollector.interval``: note which environments have servers
        running (their ``last_launched``), then collect (operations/gc.py)."""
        gc = parts["gc"]
        while True:
            await asyncio.sleep(gc.interval)
            try:
                await note_launches(parts["hub"], parts["catalog"])
            except Exception as e:  # the Hub may be restarting: collect all the same
                self.log.warning("gc: cannot see the Hub's servers: %s", e)
            try:
                # running containers are asked of the engine, so servers stay safe even
                # when the Hub did not answer
                report = await asyncio.to_thread(gc.run)
            except Exception:
                self.log.exception("gc: a round failed")
                continue
            parts["metrics"].gc_removed_images(
                sum(r.kind == "image" for r in report.removals))
            await self._sync_with_engine(parts)

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


class ServiceUrls:
    """Where the service and the Hub are, for links in pages and JSON."""

    def __init__(self, service_prefix: str, hub_prefix: str, base_url: str):
        self.service_prefix = service_prefix
        self.hub_prefix = hub_prefix
        self.base_url = base_url

    def __call__(self, *parts: str) -> str:
        """A path under the service prefix."""
        return url_path_join(self.service_prefix, *parts)


def make_service(argv=None) -> ReesService:
    logging.basicConfig(level=logging.INFO,
                        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    service = ReesService(config=read_service_config())
    service.log = logging.getLogger("tljh_rees")
    service.initialize(argv)
    service.load_admin_config()
    return service


async def run(server) -> None:
    """Run on the socket ``tljh_rees.service`` opened (the Hub's usual entry point)."""
    await make_service([]).start_async(server)


def main(argv=None) -> None:
    make_service(argv).start()


if __name__ == "__main__":
    main()
