"""ReesSpawner: DockerSpawner that launches only built environments.

``user_options`` carry an environment name and a profile name and nothing else. What
runs (the image, its limits) is the catalog's answer for this user
(``Catalog.launch_plan``), read from the rees service's database, which this process
opens read-only; mounts are the admin's. Nothing is taken from the user or from an
image's labels.
"""

from __future__ import annotations

import asyncio
import html
import io
import os
import tarfile
import time

from dockerspawner import DockerSpawner
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from jupyterhub.scopes import get_scopes_for
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.iostream import StreamClosedError
from traitlets import Dict, Integer, List, Unicode, default

from . import ADMIN_SCOPE, LABEL_PREFIX, SERVICE_NAME
from .catalog import Catalog, LaunchPlan, Profiles, Viewer
from .catalog.templates import Machine, TemplateCatalog
from .engine.images import SERVER_ENVIRONMENT_LABEL
from .errors import ReesError
from .services.images import ServiceImageRecipe, ensure_service_image
from .services.kinds import ServiceCatalog, kind_named
from .services.runner import ServiceFailed, ServiceRunner

ALLOWED_OPTIONS = {"environment", "profile", "template"}
READ_LABEL = LABEL_PREFIX + "user-lookup"  # containers created (never started) to read files
LAB_MOUNT = "/opt/tljh-rees-lab"  # the JupyterLab extension's folder, inside servers
ACCOUNT_FILE_MAX = 1024**2  # /etc/passwd or /etc/group larger than this is not read


def hub_error(status: int, message: str) -> web.HTTPError:
    """An error the Hub shows as ``message`` on its spawn pages."""
    error = web.HTTPError(status, "%s", message)
    error.jupyterhub_message = message
    return error


class ConfirmLaunch(Exception):
    """A spawn asked for by a link (query arguments): the Hub shows the form instead, with
    this message, so that only the user's own click starts a server with their files."""


class ReesSpawner(DockerSpawner):
    profiles = List(Dict(), help="Machine profiles: name, cpu, memory (bytes), description.",
                    config=True)
    default_profile = Unicode("", help="Profile used when none is chosen.", config=True)
    catalog_db = Unicode(
        "", config=True,
        help="The rees service's SQLite database (its state_dir/rees.sqlite), read to decide "
             "what may be launched.")
    binder_allow_origin = Unicode(
        "", config=True,
        help="Origins whose pages may use servers of environments made from Binder links "
             "(their --ServerApp.allow_origin); '' for none.")
    service_health_timeout = Integer(
        90, config=True, help="Seconds a server's services may take to become healthy.")
    service_ca_bundle = Unicode(
        "", config=True, help="CA bundle trusted in service images (rees.builds.ca_bundle).")
    service_mirror = Unicode(
        "http://deb.debian.org/debian", config=True,
        help="Debian mirror service images are made from (rees.base_image_mirror).")
    template_images = List(Unicode(), config=True,
                           help="Plain images templates may use (rees.templates.allowed_images).")
    services = Dict(config=True,
                    help="Add-on services this site offers, by kind (rees.services; "
                         "ServiceSettings.to_dict of each).")
    spawn_page_limit = Integer(
        30, config=True,
        help="Environments listed on the spawn page; others are found by typing a name.")
    volume_name_template = Unicode(
        "rees-home-{username}", config=True,
        help="Name of each user's persistent volume; {username} is replaced.")
    storage_path = Unicode(
        "work", config=True,
        help="Where the persistent volume appears, relative to the image's home directory. "
             "The home itself holds the repository's files, so it is not replaced.")
    data_mounts = List(Dict(), config=True,
                       help="Host folders shared with every server: source, target, readonly.")
    lab_extension_path = Unicode(
        "", config=True,
        help="The tljh_rees_lab folder (the JupyterLab extension, both halves), mounted "
             "read-only into users' servers; '' for none (rees.lab_extension.enabled).")
    rees_address = Unicode(
        "", config=True, help="http://ip:port where servers reach the rees service.")

    @default("remove")
    def _remove_default(self):
        return True  # files live in the volume; a stopped server's container is not kept

    # -- the catalog ----------------------------------------------------------------------

    _catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.open_readonly(self.catalog_db,
                                                  Profiles(self.profiles, self.default_profile),
                                                  ServiceCatalog.from_config(self.services))
        return self._catalog

    _templates: TemplateCatalog | None = None

    @property
    def templates(self) -> TemplateCatalog:
        if self._templates is None:  # the spawner checks no limits: the service did
            self._templates = TemplateCatalog(self.catalog, Machine(0, 0),
                                              self.template_images, self.catalog.services)
        return self._templates

    def viewer(self) -> Viewer:
        """The user, as the catalog sees them: rees admins are Hub admins and those with
        the ``custom:rees:admin`` scope."""
        admin = bool(self.user.admin) or ADMIN_SCOPE in get_scopes_for(self.user.orm_user)
        return Viewer(self.user.name, admin=admin)

    # -- choosing -------------------------------------------------------------------------

    async def options_form(self, spawner=None):  # noqa: ARG002 (JupyterHub passes the spawner)
        viewer = self.viewer()
        try:
            page = await asyncio.to_thread(self.catalog.page, viewer, launchable_only=True,
                                           limit=self.spawn_page_limit)
            names = [] if page.total <= len(page.items) else await asyncio.to_thread(
                self.catalog.visible, viewer, launchable_only=True)
        except Exception as e:  # the service has not made its database yet
            self.log.warning("rees: cannot read the environment catalog: %s", e)
            page, names = None, []
        if (page is None or not page.total) and not self.image:
            return ('<div class="alert alert-warning">No environment has been built yet. '
                    'Build one on the <a href="/services/rees/">Environments page</a>.</div>')
        wanted = self.handler.get_argument("environment", "") if getattr(
            self, "handler", None) else ""
        return self._form(page.items if page else [], page.total if page else 0, names, wanted)

    def _form(self, items, total: int, names, wanted: str) -> str:
        listed = {env.name for env, _ in items}
        chosen = wanted if wanted in listed else (items[0][0].name if items else "")
        rows = []
        for i, (env, _) in enumerate(items):
            detail = html.escape(f"{env.repo} @ {(env.commit or '')[:7]}")
            desc = html.escape(env.description or "")
            profile = f" · profile {html.escape(env.profile)}" if env.profile else ""
            rows.append(
                f'<label class="list-group-item d-flex gap-3 align-items-start rees-env-row" '
                f'for="rees-env-{i}" data-search="{html.escape(env.name + " " + (env.display_name or "") + " " + env.repo).lower()}">'
                f'<input class="form-check-input flex-shrink-0 mt-1" type="radio" '
                f'name="environment" id="rees-env-{i}" value="{html.escape(env.name)}"'
                f'{" checked" if env.name == chosen else ""}>'
                f'<span class="text-break"><strong>{html.escape(env.display_name or env.name)}'
                f'</strong><small class="d-block text-body-secondary">{detail}{profile}</small>'
                f'{f"<small class=d-block>{desc}</small>" if desc else ""}</span></label>')
        parts = ['<fieldset class="mb-3" id="rees-environments">'
                 '<legend class="fs-5">Environment</legend>'
                 '<input type="search" class="form-control mb-2" id="rees-env-filter" '
                 'placeholder="Filter the list" aria-label="Filter environments">'
                 '<div class="list-group" id="rees-env-list">', *rows, '</div>']
        if total > len(items):
            options = "".join(f'<option value="{html.escape(e.name)}">'
                              f'{html.escape(e.display_name or e.name)}</option>' for e in names)
            parts += [f'<label class="form-label mt-2" for="rees-env-name">Or any of the '
                      f'{total} environments, by name</label>'
                      '<input class="form-control" id="rees-env-name" name="environment_name" '
                      f'list="rees-env-names" value="{html.escape(wanted if wanted not in listed else "")}">'
                      f'<datalist id="rees-env-names">{options}</datalist>']
        parts += ['<div class="form-text"><a href="/services/rees/">Manage environments</a>'
                  '</div></fieldset>', self._profile_picker(), FILTER_SCRIPT]
        return "\n".join(parts)

    def _profile_picker(self) -> str:
        if not self.profiles:
            return ""
        options = ['<option value="">The environment\'s default</option>']
        options += [f'<option value="{html.escape(p["name"])}">'
                    f'{html.escape(p.get("label") or p["name"])}</option>' for p in self.profiles]
        return ('<div class="mb-3"><label class="form-label fs-5" for="rees-profile">'
                'Machine profile</label><select class="form-select" id="rees-profile" '
                'name="profile" aria-describedby="rees-profile-help">'
                f'{"".join(options)}</select><div class="form-text" id="rees-profile-help">'
                'The CPU and memory your server gets.</div></div>')

    def options_from_form(self, formdata):
        """Form fields as user_options. Every field is kept, except the form's own
        ``_xsrf``-style fields, so that ``start`` refuses anything but an environment and
        a profile with a clear message. A typed name wins over the list."""
        options = {k: v[0] for k, v in formdata.items() if v and v[0] and not k.startswith("_")}
        typed = options.pop("environment_name", "").strip()
        if typed:
            options["environment"] = typed
        return options

    def options_from_query(self, query_data):
        raise ConfirmLaunch("Check the environment and press Start: a link does not start a "
                            "server with your files on its own.")

    # -- starting -------------------------------------------------------------------------

    def check_options(self, options: dict) -> None:
        """Refuse anything but an environment and a profile name, with a clear message."""
        unknown = set(options) - ALLOWED_OPTIONS
        if unknown:
            raise hub_error(400, "Only 'environment' and 'profile' (or a 'template') may be "
                                 "chosen when starting a server; not "
                                 f"{', '.join(sorted(unknown))}.")
        if "template" in options and set(options) != {"template"}:
            raise hub_error(400, "A template decides the environment and the resources; "
                                 "give only 'template'.")
        for key in ALLOWED_OPTIONS & set(options):
            if not isinstance(options[key], str):
                raise hub_error(400, f"'{key}' must be a name (text).")

    async def _choose(self) -> None:
        """The image and limits of this start, from the catalog: a template's, an
        environment's, or the admin's default image."""
        options = dict(self.user_options or {})
        self.check_options(options)
        temporary = await asyncio.to_thread(self.templates.temporary_user, self.user.name)
        try:
            if options.get("template") or temporary is not None:
                plan = await asyncio.to_thread(self.templates.plan, self.viewer(),
                                               options.get("template") or "", temporary)
                self.temporary = plan.temporary
                # used from other sites with a token in the URL, as link servers are
                self.binder_server = plan.temporary
            elif options.get("environment"):
                plan = await asyncio.to_thread(self.catalog.launch_plan, self.viewer(),
                                               options["environment"],
                                               options.get("profile") or None)
                self.temporary, self.binder_server = False, plan.site
            elif self.image:  # the admin's default image (rees.default_image)
                plan = LaunchPlan("", self.image, self.catalog.profiles.resolve(
                    options.get("profile") or None))
                self.temporary = self.binder_server = False
            else:
                raise hub_error(400, "Choose an environment to start.")
        except ReesError as e:
            raise hub_error(e.status, e.message) from None
        self.image, self.environment_name = plan.image, plan.environment
        self.launch_plan = plan  # the whole answer (multi-node mode reads its registry_ref)
        self.template_name = options.get("template") or ""
        self.service_specs = list(plan.services)  # a template's or an environment's
        self.mem_limit = (plan.profile or {}).get("memory")
        self.cpu_limit = (plan.profile or {}).get("cpu")

    launch_plan: LaunchPlan | None = None  # this start's, from the catalog
    binder_server = False  # of an environment made from a Binder link, or anonymous
    temporary = False  # a temporary user's (an anonymous visitor's) server
    template_name = ""
    service_specs: list = []  # this start's add-on services
    service_env: dict = {}  # how the server reaches them
    _services_running = None  # this start's services.runner.Running, if it has services
    lab_env: dict = {}  # where the JupyterLab extension is, and the service

    def get_args(self):
        """Binder clients on other pages drive the kernels of servers made from links."""
        args = super().get_args()
        if self.binder_server and self.binder_allow_origin:
            args.append(f"--ServerApp.allow_origin={self.binder_allow_origin}")
        return args

    def get_env(self):
        """Binder clients open a link's server with ``?token=`` (a token that may use only
        that server, see handlers/binder.py), as BinderHub's do; JupyterHub servers ignore
        tokens in URLs unless told."""
        env = super().get_env()
        if self.binder_server:
            env["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] = "1"
        env.update(self.service_env)  # how to reach this server's add-on services
        env.update(self.lab_env)  # the JupyterLab extension, found where it is mounted
        return env

    async def _inspect(self, image: str) -> dict:
        try:
            return await self.docker("inspect_image", image)
        except DockerException as e:
            if not isinstance(e, ImageNotFound):
                raise hub_error(503, f"The Docker engine is not reachable: {e}") from None
            raise hub_error(404, "The image of this environment is missing; rebuild the "
                                 "environment.") from None

    # uid:gid by image id: an id names the image's content, so an answer never goes stale
    _server_users: dict[str, tuple[int, int]] = {}

    async def _server_user(self, image: str, info: dict) -> tuple[int, int]:
        """The uid and gid the server will run as (the image's ``USER``), found as Docker
        finds them but without running anything of the image: a name is looked up in the
        image's own /etc/passwd and /etc/group, read from a container that is never
        started (once per image). Root, or a user Docker could not find either, is
        refused."""
        known = self._server_users.get(info.get("Id", ""))
        if known:
            return known
        spec = (info.get("Config") or {}).get("User") or ""
        user, _, group = spec.partition(":")
        files = {}
        if not (user.isdigit() and group.isdigit()):  # USER 1000 takes its entry's group
            try:
                files = await asyncio.to_thread(read_image_files, self.client, image,
                                                ("/etc/passwd", "/etc/group"))
            except DockerException as e:
                raise hub_error(503, f"Could not read the image's users: {e}") from None
        try:
            uid, gid = resolve_user(spec, files.get("/etc/passwd"), files.get("/etc/group"))
        except LookupError as e:
            raise hub_error(409, f"This environment cannot be started: {e}. Rebuild it with "
                                 "a USER line naming a user of the image.") from None
        if uid == 0:
            raise hub_error(409, "This environment cannot be started: its image runs as root "
                                 f"(USER {spec or 'not set'}). Rebuild it with a USER that is "
                                 "not root, e.g. USER 1000 (repo2docker's images run as "
                                 "jovyan).")
        if len(self._server_users) > 1000:
            self._server_users.clear()
        self._server_users[info["Id"]] = (uid, gid)
        return uid, gid

    async def _ensure_volume(self, name: str, uid: int, gid: int) -> None:
        """Create the user's volume owned by ``uid:gid`` (Docker makes it root's).

        The new, empty volume's folder is chowned by this process (root, beside dockerd):
        nothing of the environment's image runs, so a builder's ENTRYPOINT or ``chown``
        never sees the volume as root. The folder is Docker's, fresh and empty, and is
        opened without following a link.
        """
        try:
            await self.docker("inspect_volume", name)
            return
        except NotFound:
            pass
        volume = await self.docker("create_volume", name,
                                   labels={LABEL_PREFIX + "user": self.user.name})
        try:
            await asyncio.to_thread(chown_folder, volume.get("Mountpoint") or "", uid, gid)
        except OSError as e:
            await self.docker("remove_volume", name)  # made just now, empty: try again later
            raise hub_error(500, f"Could not make the volume {name} yours: its folder "
                                 f"{volume.get('Mountpoint')!r} (driver "
                                 f"{volume.get('Driver')}) is not usable from the Hub's "
                                 f"machine ({e}); tljh-rees needs Docker's local volume driver "
                                 "on the Hub's own machine.") from None

    async def start(self):
        await self._choose()
        info = await self._inspect(self.image)
        env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
        home = env.get("HOME") or "/home/jovyan"
        uid, gid = await self._server_user(self.image, info)
        self._account = (home, uid, gid)
        volume = self.volume_name_template.format(username=self.escaped_name)
        mount_path = f"{home.rstrip('/')}/{self.storage_path}"
        volumes = {}
        if not self.temporary:  # temporary users have no storage that outlives them
            await self._ensure_volume(volume, uid, gid)
            # nocopy: Docker would otherwise fill an empty volume with the image's files
            # at that path (a builder's) and give it that folder's owner.
            volumes[volume] = {"bind": mount_path, "mode": "rw,nocopy"}
        for mount in self.data_mounts:
            readonly = mount.get("readonly", True)
            if readonly or not self.temporary:
                volumes[mount["source"]] = {"bind": mount["target"],
                                            "mode": "ro" if readonly else "rw"}
        self.lab_env = {}
        if self.lab_extension_path and not self.temporary:  # visitors cannot build
            volumes[self.lab_extension_path] = {"bind": f"{LAB_MOUNT}/tljh_rees_lab",
                                                "mode": "ro"}
            self.lab_env = lab_extension_env(env, self.rees_address)
        self.volumes = volumes
        labels = {SERVER_ENVIRONMENT_LABEL: self.environment_name,
                  LABEL_PREFIX + "user": self.user.name,
                  LABEL_PREFIX + "server-name": self.name}
        if self.template_name:
            labels[LABEL_PREFIX + "template"] = self.template_name
        self.extra_create_kwargs = {"labels": labels}
        self.service_env, self.progress_notes = {}, []
        services = self._services_running = None
        if self.service_specs:  # they start beside the server, which knows how to reach them
            running = self.service_runner.plan(self.container_name, self.service_specs)
            self.service_env, self._services_running = running.env, running
            await self._open_services(running)
            services = asyncio.create_task(self._start_services(running))
        try:
            ip, port = await self._start_container()
            if services is not None:
                await services
                await self._join_services()
        except BaseException:
            if services is not None:
                services.cancel()
                await asyncio.gather(services, return_exceptions=True)
                await self._stop_services()
            raise
        await self._until_answering(ip, port)
        return ip, port

    async def _start_container(self) -> tuple[str, int]:
        try:
            return await super().start()
        except ImageNotFound:
            raise hub_error(404, "The environment's image is gone; it was deleted while "
                                 "starting.") from None
        except APIError as e:
            raise hub_error(500, f"Docker could not start the server: "
                                 f"{e.explanation or e}") from None
        except DockerException as e:
            raise hub_error(503, f"The Docker engine is not reachable: {e}") from None

    # -- add-on services ------------------------------------------------------------------

    _service_runner: ServiceRunner | None = None

    @property
    def service_runner(self) -> ServiceRunner:
        if self._service_runner is None:
            self._service_runner = ServiceRunner(
                self.client, self.catalog.services, self.service_image,
                health_timeout=self.service_health_timeout, progress=self.note_progress)
        return self._service_runner

    progress_notes: list = []  # what this start has done so far, for the Hub's page

    _progress_wake = None  # wakes the progress stream (callable from any thread)

    def note_progress(self, message: str) -> None:
        self.progress_notes = [*self.progress_notes, message]
        if self._progress_wake is not None:
            self._progress_wake()

    async def progress(self):
        """The Hub's progress page: each step of the services, as it happens. A note is
        sent at once: the Hub stops asking when the server is up, and a note that waited
        for the next round (the last service ready, just before) would be lost."""
        yield {"progress": 10, "message": "Spawning server..."}
        loop, noted = asyncio.get_running_loop(), asyncio.Event()
        self._progress_wake = lambda: loop.call_soon_threadsafe(noted.set)
        shown = 0
        while True:
            notes = self.progress_notes
            for note in notes[shown:]:
                yield {"progress": 50, "message": note}
            shown = len(notes)
            if not self._spawn_pending:
                return
            try:
                await asyncio.wait_for(noted.wait(), 0.3)
            except asyncio.TimeoutError:
                pass
            noted.clear()

    def service_image(self, name: str, version: str) -> str:
        """The local image of a service, made (from Debian's packages) if missing: once per
        recipe, minutes at most; ``tljh-rees service-images`` makes them ahead."""
        recipe = ServiceImageRecipe(kind_named(name), version, ca_bundle=self.service_ca_bundle,
                                    mirror=self.service_mirror)
        def note(message: str) -> None:
            self.log.info("services: %s", message)
            self.note_progress(message)

        return ensure_service_image(recipe, progress=note)

    def service_volume(self, service: str) -> str:
        """A user's persistent volume of one service (``rees-home-alice`` → ``…-postgres``);
        none for a temporary user, whose services keep nothing, like their server."""
        if self.temporary:
            return ""
        return f"{self.volume_name_template.format(username=self.escaped_name)}-{service}"

    async def _open_services(self, running) -> None:
        """Before the server: its services' network (and what a crash left, removed)."""
        try:
            await self.service_runner.open(self.container_name, self.user.name, running)
        except DockerException as e:
            raise hub_error(503, f"Could not prepare the server's services: {e}") from None

    async def _start_services(self, running) -> None:
        """Start this server's services as planned. A service that fails stops the launch
        with its own last log lines."""
        try:
            await self.service_runner.start(self.container_name, self.user.name,
                                            self.service_specs, self.service_volume, running)
        except ServiceFailed as e:
            raise hub_error(500, str(e)) from None
        except DockerException as e:
            raise hub_error(503, f"Could not start the server's services: {e}") from None

    async def _stop_services(self) -> None:
        await self.service_runner.stop(self.container_name)

    async def _join_services(self) -> None:
        """Put the started server on its services' private network, and write how to reach
        them to ``~/.rees/services.env`` (readable by the server's user only), for tools
        that do not read the environment."""
        running = self._services_running
        await asyncio.to_thread(self.client.connect_container_to_network, self.container_id,
                                running.network)
        home, uid, gid = self._account
        await asyncio.to_thread(self.client.put_archive, self.container_id, home,
                                env_file_archive(running.env_text(), uid, gid))

    async def stop(self, now=False):
        await super().stop(now=now)
        if self.services:
            await self._stop_services()

    async def _until_answering(self, ip: str, port: int) -> None:
        """Return once the new server answers HTTP (or after ``http_timeout``).

        JupyterHub checks a new server with growing pauses (0.2 s, 0.4 s, … up to 5 s), so
        one that is up after 3 s may be noticed only after 6. Watching closely here lets
        the Hub's first check pass at once.
        """
        url = f"http://{ip}:{port}{self.server.base_url}api"
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.http_timeout
        while time.monotonic() < deadline:
            try:
                response = await client.fetch(url, raise_error=False, request_timeout=2)
                if response.code < 500:
                    return
            except (OSError, HTTPClientError, StreamClosedError):
                pass  # not listening yet
            await asyncio.sleep(0.05)


def lab_extension_env(image_env: dict, rees_address: str) -> dict:
    """The variables that make the mounted extension found by the image's own Python and
    Jupyter, ahead of (not instead of) the image's own paths."""
    package = f"{LAB_MOUNT}/tljh_rees_lab"
    paths = {"PYTHONPATH": LAB_MOUNT, "JUPYTER_PATH": f"{package}/share",
             "JUPYTER_CONFIG_PATH": f"{package}/etc"}
    env = {name: ":".join(filter(None, (value, image_env.get(name))))
           for name, value in paths.items()}
    env["TLJH_REES_ADDRESS"] = rees_address
    env["TLJH_REES_SERVICE_NAME"] = SERVICE_NAME
    return env


def read_image_files(api, image: str, paths) -> dict[str, str]:
    """Small text files of ``image`` (a docker ``APIClient``), by path; a missing one, a
    link or one over ``ACCOUNT_FILE_MAX`` is left out. The container is created, never
    started, and removed."""
    container = api.create_container(image, command=["true"], entrypoint=[],
                                     network_disabled=True, labels={READ_LABEL: "1"})
    found = {}
    try:
        for path in paths:
            try:
                stream, stat = api.get_archive(container["Id"], path)
            except NotFound:
                continue
            try:
                data = _read_at_most(stream, ACCOUNT_FILE_MAX + 64 * 1024)  # + tar headers
            finally:
                stream.close()
            if data is None or stat.get("size", 0) > ACCOUNT_FILE_MAX:
                continue  # a folder or a huge file there: not an account file
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                if member is not None and member.isfile():
                    found[path] = tar.extractfile(member).read().decode("utf-8", "replace")
    finally:
        api.remove_container(container["Id"], force=True)
    return found


def env_file_archive(text: str, uid: int, gid: int) -> bytes:
    """A tar of ``.rees/services.env`` holding ``text``, owned by ``uid:gid``, mode 0600."""
    buffer = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(".rees")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, uid, gid
        tar.addfile(folder)
        info = tarfile.TarInfo(".rees/services.env")
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, gid
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_at_most(chunks, limit: int) -> bytes | None:
    data = b""
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            return None
    return data


def _entries(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines()
            if line and not line.startswith("#")]


def resolve_user(spec: str, passwd: str | None, group: str | None) -> tuple[int, int]:
    """``USER`` (``user[:group]``, names or numbers) as the uid and gid Docker runs it as,
    from the image's /etc/passwd and /etc/group texts (None: the file is missing).

    As Docker does: no user is root; a number needs no entry (its group is then the
    entry's, or 0); a name must have one; an explicit group wins. LookupError says which
    name could not be found.
    """
    user, _, grp = spec.partition(":")
    users = [e for e in _entries(passwd) if len(e) >= 4 and e[2].isdigit() and e[3].isdigit()]
    if not user:
        uid, gid = 0, 0
    elif user.isdigit():
        uid = int(user)
        gid = next((int(e[3]) for e in users if int(e[2]) == uid), 0)
    else:
        entry = next((e for e in users if e[0] == user), None)
        if entry is None:
            raise LookupError(f"its image's user {user!r} is not in the image's /etc/passwd")
        uid, gid = int(entry[2]), int(entry[3])
    if grp.isdigit():
        gid = int(grp)
    elif grp:
        found = next((int(e[2]) for e in _entries(group)
                      if len(e) >= 3 and e[0] == grp and e[2].isdigit()), None)
        if found is None:
            raise LookupError(f"its image's group {grp!r} is not in the image's /etc/group")
        gid = found
    return uid, gid


def chown_folder(path: str, uid: int, gid: int) -> None:
    """Give the folder ``path`` itself (not a link there) to ``uid:gid``."""
    if not os.path.isabs(path):
        raise FileNotFoundError(f"not a folder on this machine: {path!r}")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


# Narrows the listed environments as the user types (the form works without it).
FILTER_SCRIPT = """<script>
(function () {
  var box = document.getElementById("rees-env-filter");
  if (!box) return;
  box.addEventListener("input", function () {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    document.querySelectorAll(".rees-env-row").forEach(function (row) {
      row.hidden = !words.every(function (w) { return row.dataset.search.indexOf(w) >= 0; });
    });
  });
})();
</script>"""
