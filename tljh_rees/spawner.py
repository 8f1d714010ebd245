"""ReesSpawner: DockerSpawner that launches only built environments.

``user_options`` carry an environment name and a profile name and nothing else; the
image, limits and mounts are decided here from the environment's labels and the
admin's profiles, never taken from the user.
"""

from __future__ import annotations

import asyncio
import html
import time

from dockerspawner import DockerSpawner
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.iostream import StreamClosedError
from traitlets import Dict, List, Unicode, default

from . import LABEL_PREFIX
from .engine.catalog import ENVIRONMENT_LABEL, EnvironmentImage, environments_from_images

ALLOWED_OPTIONS = {"environment", "profile"}


class ReesSpawner(DockerSpawner):
    profiles = List(Dict(), help="Machine profiles: name, cpu, memory (bytes), description.",
                    config=True)
    default_profile = Unicode("", help="Profile used when none is chosen.", config=True)
    volume_name_template = Unicode(
        "rees-home-{username}", config=True,
        help="Name of each user's persistent volume; {username} is replaced.")
    storage_path = Unicode(
        "work", config=True,
        help="Where the persistent volume appears, relative to the image's home directory. "
             "The home itself holds the repository's files, so it is not replaced.")
    data_mounts = List(Dict(), config=True,
                       help="Host folders shared with every server: source, target, readonly.")

    @default("remove")
    def _remove_default(self):
        return True  # files live in the volume; a stopped server's container is not kept

    # -- choosing -------------------------------------------------------------------------

    async def _environments(self) -> dict[str, EnvironmentImage]:
        images = await self.docker("images", filters={"label": ENVIRONMENT_LABEL})
        return {
            name: env for name, env in environments_from_images(images).items()
            if env.visible_to(self.user.name, bool(self.user.admin))
        }

    def _profile(self, name: str) -> dict | None:
        return next((p for p in self.profiles if p["name"] == name), None)

    async def options_form(self, spawner=None):  # noqa: ARG002 (JupyterHub passes the spawner)
        environments = await self._environments()
        if not environments and not self.image:
            return ('<div class="alert alert-warning">No environment has been built yet. '
                    'Build one on the <a href="/services/rees/">Environments page</a>.</div>')
        rows = []
        for i, env in enumerate(sorted(environments.values(), key=lambda e: e.display_name)):
            commit = env.label("commit")[:7]
            detail = html.escape(f"{env.label('repo')} @ {commit}")
            desc = html.escape(env.label("description"))
            desc_html = f'<small class="d-block">{desc}</small>' if desc else ""
            rows.append(
                f'<label class="list-group-item d-flex gap-3 align-items-start" '
                f'for="rees-env-{i}"><input class="form-check-input flex-shrink-0 mt-1" '
                f'type="radio" name="environment" id="rees-env-{i}" '
                f'value="{html.escape(env.name)}"{" checked" if i == 0 else ""}>'
                f'<span class="text-break"><strong>{html.escape(env.display_name)}</strong>'
                f'<small class="d-block text-body-secondary">{detail}</small>'
                f'{desc_html}'
                f'</span></label>')
        profiles = "".join(
            f'<option value="{html.escape(p["name"])}"'
            f'{" selected" if p["name"] == self.default_profile else ""}>'
            f'{html.escape(p.get("label") or p["name"])}</option>'
            for p in self.profiles)
        parts = ['<fieldset class="mb-3" id="rees-environments">'
                 '<legend class="fs-5">Environment</legend>'
                 '<div class="list-group">', *rows, '</div>'
                 '<div class="form-text"><a href="/services/rees/">Manage environments</a>'
                 '</div></fieldset>']
        if profiles:
            parts += ['<div class="mb-3"><label class="form-label fs-5" for="rees-profile">'
                      'Machine profile</label><select class="form-select" id="rees-profile" '
                      'name="profile" aria-describedby="rees-profile-help">'
                      f'{profiles}</select><div class="form-text" id="rees-profile-help">'
                      'The CPU and memory your server gets.</div></div>']
        return "\n".join(parts)

    def options_from_form(self, formdata):
        """Form fields (and spawn-URL query arguments) as user_options.

        Every field is kept, except the form's own ``_xsrf``-style fields, so that
        ``start`` refuses anything but an environment and a profile with a clear message.
        """
        return {k: v[0] for k, v in formdata.items() if v and v[0] and not k.startswith("_")}

    # -- starting -------------------------------------------------------------------------

    def check_options(self, options: dict) -> None:
        """Refuse anything but an environment and a profile name, with a clear message."""
        unknown = set(options) - ALLOWED_OPTIONS
        if unknown:
            raise web.HTTPError(400, "Only 'environment' and 'profile' may be chosen when "
                                     f"starting a server; not {', '.join(sorted(unknown))}.")
        for key in ALLOWED_OPTIONS & set(options):
            if not isinstance(options[key], str):
                raise web.HTTPError(400, f"'{key}' must be a name (text).")

    async def _choose(self) -> None:
        options = dict(self.user_options or {})
        self.check_options(options)
        env_name = options.get("environment")
        if env_name:
            env = (await self._environments()).get(env_name)
            if env is None:
                raise web.HTTPError(404, f"Environment '{env_name}' does not exist (it may have "
                                         "been deleted). Choose one of the built environments.")
            self.image = env.image
        elif not self.image:
            raise web.HTTPError(400, "Choose an environment to start.")
        profile_name = options.get("profile") or self.default_profile
        if profile_name:
            profile = self._profile(profile_name)
            if profile is None:
                names = ", ".join(p["name"] for p in self.profiles) or "none"
                raise web.HTTPError(400, f"Profile '{profile_name}' is not offered "
                                         f"(profiles: {names}).")
            self.mem_limit = profile.get("memory")
            self.cpu_limit = profile.get("cpu")
        self.environment_name = env_name or ""

    async def _home_of(self, image: str) -> str:
        try:
            info = await self.docker("inspect_image", image)
        except DockerException as e:
            if not isinstance(e, ImageNotFound):
                raise web.HTTPError(503, f"The Docker engine is not reachable: {e}") from None
            raise web.HTTPError(404, f"The image {image} of this environment is missing; "
                                     "rebuild the environment.") from None
        env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
        return env.get("HOME") or "/home/jovyan"

    async def _ensure_volume(self, name: str, image: str, mount_path: str) -> None:
        """Create the user's volume owned by the image's user (Docker makes it root's)."""
        try:
            await self.docker("inspect_volume", name)
            return
        except NotFound:
            pass
        await self.docker("create_volume", name, labels={LABEL_PREFIX + "user": self.user.name})
        home = mount_path.rsplit("/", 1)[0] or "/"
        container = await self.docker(
            "create_container", image, user="0",
            command=["sh", "-c", 'chown "$(stat -c %u:%g "$1")" /mnt', "sh", home],
            host_config=self.client.create_host_config(binds={name: {"bind": "/mnt"}}),
        )
        try:
            await self.docker("start", container["Id"])
            await self.docker("wait", container["Id"])
        finally:
            await self.docker("remove_container", container["Id"], force=True)

    async def start(self):
        await self._choose()
        home = await self._home_of(self.image)
        volume = self.volume_name_template.format(username=self.escaped_name)
        mount_path = f"{home.rstrip('/')}/{self.storage_path}"
        await self._ensure_volume(volume, self.image, mount_path)
        volumes = {volume: {"bind": mount_path, "mode": "rw"}}
        for mount in self.data_mounts:
            volumes[mount["source"]] = {"bind": mount["target"],
                                        "mode": "ro" if mount.get("readonly", True) else "rw"}
        self.volumes = volumes
        self.extra_create_kwargs = {"labels": {
            LABEL_PREFIX + "server-environment": self.environment_name,
            LABEL_PREFIX + "user": self.user.name,
            LABEL_PREFIX + "server-name": self.name,
        }}
        try:
            ip, port = await super().start()
        except ImageNotFound:
            raise web.HTTPError(404, f"The environment's image {self.image} is gone; "
                                     "it was deleted while starting.") from None
        except APIError as e:
            raise web.HTTPError(500, f"Docker could not start the server: "
                                     f"{e.explanation or e}") from None
        except DockerException as e:
            raise web.HTTPError(503, f"The Docker engine is not reachable: {e}") from None
        await self._until_answering(ip, port)
        return ip, port

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
