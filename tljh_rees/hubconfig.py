"""Turn validated settings into JupyterHub configuration.

The one place that knows how tljh-rees plugs into a Hub: TLJH's hook and the
``tljh-rees demo`` Hub both call :func:`configure_hub`, so they cannot drift apart.
"""

from __future__ import annotations

import json
import os
import sys

from traitlets.config import Config, LazyConfigValue

from . import ADMIN_SCOPE, BUILD_SCOPE, METRICS_SCOPE, SERVICE_NAME
from .binder.links import provider_classes
from .engine.docker import bridge_gateway
from .settings import Settings

SERVICE_CONFIG_ENV = "TLJH_REES_CONFIG"
# Which Docker engine to use. JupyterHub gives a managed service only a few of its own
# variables, so these are passed on: the service and its repo2docker then build on the
# engine the Hub's spawner launches from.
DOCKER_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
SERVICE_ROLE = "rees-service"
BUILDERS_ROLE = "rees-builders"
ADMINS_ROLE = "rees-admins"
# What the service needs of the Hub: read users and their servers, start/stop servers for
# them, and give a Binder client a token that may use only the server it launched.
# Anonymous launches also make and remove temporary users, and note activity of pooled
# servers waiting to be claimed (admin:users holds both).
SERVICE_SCOPES = ["admin:users", "list:users", "admin:servers", "read:roles:users", "tokens"]
HUB_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hub_templates")
# The JupyterLab extension's folder (both halves), mounted into servers by the spawner.
# Found without importing it: it imports jupyter_server, which the Hub needs not have.
LAB_EXTENSION_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "tljh_rees_lab")
# The service also listens here, for servers (the service's own address is loopback).
SERVER_ADDRESS_ENV = "TLJH_REES_SERVER_ADDRESS"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
SERVER_ROLE_DEFAULTS = ["users:activity!user", "access:servers!server"]  # JupyterHub's


def service_config(settings: Settings, config_dir: str = "") -> Config:
    """The traitlets configuration of the rees service and its parts (the admin's own
    ``rees_config.py`` in ``config_dir`` is read after it, by the service)."""
    c = Config()
    c.ReesService.config_dir = config_dir
    c.ReesService.ip = settings.service_ip
    c.ReesService.port = settings.service_port
    c.ReesService.state_dir = settings.state_dir
    c.ReesService.profiles = [p.to_dict() for p in settings.profiles]
    c.ReesService.default_profile = settings.default_profile
    c.ReesService.gallery_show = settings.gallery_show
    c.ExportManager.push_registry = settings.export_registry
    if settings.binder.providers:
        c.BinderLinks.providers = list(settings.binder.providers)
    c.BinderLinks.build_from_links = settings.binder.build_from_links
    c.BinderLinks.cors_allow_origin = settings.binder.cors_allow_origin
    classes = provider_classes()
    for provider_id, url in settings.binder.base_urls.items():
        c[classes[provider_id].__name__].base_url = url
    c.Applications.anonymous_enabled = settings.anonymous.enabled
    c.Applications.max_anonymous = settings.anonymous.max_servers
    c.Applications.launches_per_hour = settings.anonymous.launches_per_hour
    c.Quotas.servers_per_user = settings.quotas.servers_per_user
    c.Quotas.queued_builds_per_user = settings.quotas.queued_builds_per_user
    c.Quotas.launches_per_environment = settings.quotas.launches_per_environment
    c.Quotas.queue_length = settings.quotas.queue_length
    c.ReesService.template_images = list(settings.template_images)
    c.ReesService.services = service_offer(settings)
    c.ReesService.hpc = settings.hpc.to_dict()
    c.BuildManager.concurrency = settings.builds.concurrency
    c.BuildManager.allow_local_repos = settings.builds.allow_local_repos
    c.BuildManager.timeout = settings.builds.timeout
    c.LogStore.max_bytes = settings.builds.log_max_bytes
    c.Repo2DockerBuilder.base_image = settings.builds.base_image
    c.Repo2DockerBuilder.build_args = dict(settings.builds.build_args)
    gc_config(c, settings)
    if settings.swarm.enabled:  # multi-node mode: builds go to a registry
        from .swarm.hub import service_swarm_config
        service_swarm_config(c, settings)
    return c


def gc_config(c: Config, settings: Settings) -> Config:
    """``rees.gc`` as the GarbageCollector's traits (the service and ``tljh-rees gc``)."""
    c.GarbageCollector.high = float(settings.gc.high)
    c.GarbageCollector.low = float(settings.gc.low)
    c.GarbageCollector.max_image_bytes = settings.gc.max_image_bytes
    c.GarbageCollector.build_cache_hours = settings.gc.build_cache_hours
    c.GarbageCollector.keep_days = settings.gc.keep_days
    c.GarbageCollector.interval = settings.gc.interval
    return c


def service_offer(settings: Settings) -> dict:
    """``rees.services`` as plain dicts by kind (``ServiceCatalog.from_config`` reads it)."""
    return {s.name: s.to_dict() for s in settings.services}


def _list_setting(c_section, name: str) -> list:
    """The list setting ``name`` as a plain list kept in ``c_section``.

    An unset list that others appended to (``c.JupyterHub.services.append(...)``) is a
    lazy value; the lists touched here (services, load_roles) default to empty in
    JupyterHub, so resolving it against ``[]`` is exact and lets us see what it holds
    (template_paths too: JupyterHub appends its default templates' path itself).
    """
    value = c_section[name] if name in c_section else []
    if isinstance(value, LazyConfigValue):
        value = value.get_value([])
    if not isinstance(value, list):
        value = list(value)
    c_section[name] = value
    return value


def _append(c_section, name: str, item) -> None:
    _list_setting(c_section, name).append(item)


def _grant_role_scopes(c, name: str, defaults: list[str], scopes: list[str]) -> None:
    """Add ``scopes`` to the Hub's default role ``name`` (whose own scopes are
    ``defaults``), keeping what others gave it."""
    roles = _list_setting(c.JupyterHub, "load_roles")
    role = next((r for r in roles if r.get("name") == name), None)
    if role is None:
        role = {"name": name, "scopes": list(defaults)}
        roles.append(role)
    have = role.setdefault("scopes", list(defaults))
    have.extend(s for s in scopes if s not in have)


def _admin_users(c) -> list[str]:
    if "Authenticator" in c and "admin_users" in c.Authenticator:
        value = c.Authenticator.admin_users
        if isinstance(value, (set, list, tuple)):
            return sorted(value)
    return []


def lab_extension_address(settings: Settings, hub_ip: str) -> str:
    """``http://ip:port`` where servers reach the service, or "" without the extension.
    Servers reach the Hub at its bridge address, so a service on loopback listens there
    too (see :data:`SERVER_ADDRESS_ENV`); one on all addresses is reached there anyway."""
    if not settings.lab_extension or not hub_ip:
        return ""
    ip = settings.service_ip
    if ip in LOOPBACK or ip in ("0.0.0.0", "::"):
        ip = hub_ip
    return f"http://{ip}:{settings.service_port}"


class NamedServerLimit:
    """``JupyterHub.named_server_limit_per_user`` from ``rees.quotas.servers_per_user``.

    The Hub asks it with the handler of the request, whose caller is the one limited: a
    user on the Hub's own pages and API (Hub admins are exempt, as from the service's
    quota), or the rees service, which is not limited here because it applies the quota
    itself (counting running servers). The Hub counts a user's named servers that exist,
    stopped ones too, until they are deleted."""

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, handler) -> int:
        caller = handler.current_user
        if caller is None or getattr(caller, "kind", "user") != "user":
            return 0
        return 0 if getattr(caller, "admin", False) else self.limit

    def __repr__(self) -> str:
        return f"NamedServerLimit({self.limit})"


def configure_hub(c: Config, settings: Settings, python: str = sys.executable,
                  config_dir: str = "") -> None:
    """Apply tljh-rees to the JupyterHub config ``c`` (TLJH's, or the demo's).
    ``config_dir`` holds the admin's ``rees_config.py`` (TLJH's config folder)."""
    env_config = json.dumps(service_config(settings, config_dir))
    hub_ip = settings.hub_ip or bridge_gateway()
    # Servers reach the service where they reach the Hub (for the JupyterLab extension)
    server_address = lab_extension_address(settings, hub_ip)
    _append(c.JupyterHub, "services", {
        "name": SERVICE_NAME,
        "url": f"http://{settings.service_ip}:{settings.service_port}",
        "command": [python, "-m", "tljh_rees.service"],
        # The service's config travels in its environment,
        # which only root and the service can read; never on the command line.
        "environment": {SERVICE_CONFIG_ENV: env_config,
                        **({SERVER_ADDRESS_ENV: hub_ip}
                           if server_address and settings.service_ip in LOOPBACK else {}),
                        **{k: os.environ[k] for k in DOCKER_ENV if k in os.environ}},
        "oauth_no_confirm": True,
        # The service's pages act for the user: with their build/admin rights, and
        # starting and stopping their own servers (launch links, the Servers page).
        "oauth_client_allowed_scopes": [BUILD_SCOPE, ADMIN_SCOPE, METRICS_SCOPE,
                                        "servers!user"],
        "display": True,
        "info": {"description": "Build and launch reproducible environments"},
    })

    custom_scopes = c.JupyterHub.get("custom_scopes") or {}
    custom_scopes = dict(custom_scopes) if isinstance(custom_scopes, dict) else {}
    custom_scopes[BUILD_SCOPE] = {"description": "Build environments from repositories"}
    custom_scopes[METRICS_SCOPE] = {
        "description": "Read the rees service's metrics (Prometheus)"}
    custom_scopes[ADMIN_SCOPE] = {
        "description": "Administer all environments and builds",
        "subscopes": [BUILD_SCOPE, METRICS_SCOPE],
    }
    c.JupyterHub.custom_scopes = custom_scopes

    _append(c.JupyterHub, "load_roles", {
        "name": SERVICE_ROLE, "description": "The tljh-rees service",
        "scopes": SERVICE_SCOPES, "services": [SERVICE_NAME],
    })
    _append(c.JupyterHub, "load_roles", {
        "name": BUILDERS_ROLE, "description": "May build environments",
        "scopes": [BUILD_SCOPE], "users": list(settings.builders),
    })
    _append(c.JupyterHub, "load_roles", {
        "name": ADMINS_ROLE, "description": "May administer all environments",
        "scopes": [ADMIN_SCOPE, METRICS_SCOPE],
        "users": sorted(set(settings.admins) | set(_admin_users(c))),
    })
    service_access = f"access:services!service={SERVICE_NAME}"
    _grant_role_scopes(c, "user", ["self"], [service_access])
    if settings.lab_extension:
        # The JupyterLab extension calls the service with its server's token. The Hub
        # gives a token the intersection of its scopes and its owner's, so a server may
        # build only for an owner who may.
        _grant_role_scopes(c, "server", SERVER_ROLE_DEFAULTS, [service_access, BUILD_SCOPE])

    if hub_ip:
        # Containers reach the Hub at the bridge address; listening only there keeps the
        # Hub's own port off the public interfaces.
        c.JupyterHub.hub_ip = hub_ip
        c.JupyterHub.hub_connect_ip = hub_ip
    else:
        print("tljh-rees: no Docker bridge found; the Hub listens on all interfaces",
              file=sys.stderr)
        c.JupyterHub.hub_ip = "0.0.0.0"

    # The Hub's own pages get "Environments" and "Servers" in their navigation bar.
    _append(c.JupyterHub, "template_paths", HUB_TEMPLATES)

    c.JupyterHub.spawner_class = "tljh_rees.spawner.ReesSpawner"
    c.JupyterHub.allow_named_servers = True
    if settings.quotas.servers_per_user:
        # launches through the Hub's own spawn page are bounded by the Hub itself
        c.JupyterHub.named_server_limit_per_user = NamedServerLimit(
            settings.quotas.servers_per_user)
    c.ReesSpawner.profiles = [p.to_dict() for p in settings.profiles]
    c.ReesSpawner.default_profile = settings.default_profile
    c.ReesSpawner.catalog_db = os.path.join(settings.state_dir, "rees.sqlite")
    c.ReesSpawner.binder_allow_origin = settings.binder.cors_allow_origin
    c.ReesSpawner.template_images = list(settings.template_images)
    c.ReesSpawner.services = service_offer(settings)
    c.ReesSpawner.service_ca_bundle = settings.builds.ca_bundle
    c.ReesSpawner.service_mirror = settings.base_image_mirror
    c.ReesSpawner.volume_name_template = settings.storage.volume_name
    c.ReesSpawner.storage_path = settings.storage.path
    c.ReesSpawner.data_mounts = [
        {"source": m.source, "target": m.target, "readonly": m.readonly}
        for m in settings.data_mounts
    ]
    c.ReesSpawner.image = settings.default_image
    if server_address:
        c.ReesSpawner.lab_extension_path = LAB_EXTENSION_PATH
        c.ReesSpawner.rees_address = server_address
    # TLJH sets a command and limits for its systemd servers; containers bring their own.
    c.ReesSpawner.cmd = ["jupyterhub-singleuser"]
    c.ReesSpawner.mem_limit = None
    c.ReesSpawner.cpu_limit = None
    if settings.hpc.enabled:  # the same spawner, able to run a server as a Slurm job too
        from .hpc.spawner import HpcReesSpawner  # imports batchspawner: its Hub API route

        c.JupyterHub.spawner_class = HpcReesSpawner
        c.HpcReesSpawner.hpc = settings.hpc.to_dict()
        # an image's first export and its time in the queue come before the server starts
        c.HpcReesSpawner.start_timeout = settings.hpc.queue_timeout + 900
    if settings.swarm.enabled:  # multi-node mode: servers as Swarm services
        from .swarm.hub import configure_swarm
        configure_swarm(c, settings)


def read_service_config() -> Config:
    """The config :func:`configure_hub` passed to the service through its environment."""
    raw = os.environ.get(SERVICE_CONFIG_ENV)
    return Config(json.loads(raw)) if raw else Config()
