"""``rees.swarm`` → JupyterHub and service configuration (called by hubconfig.py).

Only when ``rees.swarm.enabled``: the Hub listens on the manager's swarm address (servers
on other nodes reach it there), spawns with ReesSwarmSpawner, and runs the project's
registry as a managed service unless the admin named one; the service builds with
SwarmBuilder, which pushes every build there.
"""

from __future__ import annotations

import docker
from traitlets.config import Config

from .. import SERVICE_NAME
from ..engine.baseimage import BaseImageRecipe
from ..settings import Settings
from .nodes import manager_address
from .registry import Registry, prepare_own_registry, trust

REGISTRY_SERVICE = "rees-registry"
NAME_TEMPLATE = "rees-swarm-{username}--{servername}"


def swarm_address(settings: Settings) -> str:
    """The manager's address on the swarm (rees.swarm.advertise_address, or the engine's)."""
    if settings.swarm.advertise_address:
        return settings.swarm.advertise_address
    api = docker.APIClient(version="auto", timeout=30, **docker.utils.kwargs_from_env())
    return manager_address(api)


def registry_for(settings: Settings, address: str) -> tuple[Registry, str]:
    """The registry builds go to, and the config file of ours ('' for an admin's)."""
    s = settings.swarm
    if s.registry:
        return Registry(s.registry, s.registry_username, s.registry_password), ""
    registry, config_file = prepare_own_registry(settings.state_dir, address, s.registry_port)
    trust(registry)  # this machine's engine pushes and pulls over TLS
    return registry, config_file


def service_swarm_config(c: Config, settings: Settings) -> None:
    """The service's part: builds are pushed to the registry, which the GC collects."""
    registry, config_file = registry_for(settings, swarm_address(settings))
    c.ReesService.builder_class = "tljh_rees.swarm.builder.SwarmBuilder"
    c.ReesService.machine_source = "swarm"  # templates and pools fit the nodes
    c.SwarmBuilder.registry_address = registry.address
    c.SwarmBuilder.registry_username = registry.username
    c.SwarmBuilder.registry_password = registry.password
    c.RegistryCollector.ca_file = registry.ca_file
    c.RegistryCollector.config_file = config_file


def configure_swarm(c: Config, settings: Settings) -> None:
    """The Hub's part, on top of configure_hub's single-machine config."""
    from ..hubconfig import _append
    address = swarm_address(settings)
    registry, config_file = registry_for(settings, address)
    if config_file:
        _append(c.JupyterHub, "services", {
            "name": REGISTRY_SERVICE, "command": ["docker-registry", "serve", config_file]})
    if not settings.hub_ip:  # servers on other machines reach the Hub at this address
        c.JupyterHub.hub_ip = c.JupyterHub.hub_connect_ip = address
    c.JupyterHub.spawner_class = "tljh_rees.swarm.spawner.ReesSwarmSpawner"
    c.ReesSwarmSpawner.name_template = NAME_TEMPLATE
    c.ReesSwarmSpawner.registry_address = registry.address
    c.ReesSwarmSpawner.registry_username = registry.username
    c.ReesSwarmSpawner.registry_password = registry.password
    c.ReesSwarmSpawner.placement = {k: list(v) for k, v in settings.swarm.placement.items()}
    c.ReesSwarmSpawner.service_placement = list(settings.swarm.service_placement)
    c.ReesSwarmSpawner.helper_image = BaseImageRecipe(
        mirror=settings.base_image_mirror).rootfs_tag()
    if settings.lab_extension:
        # Servers on every node reach the Hub (and the service, for the JupyterLab
        # extension) at the manager's swarm address, not at the local Docker bridge.
        from ..hubconfig import LOOPBACK, SERVER_ADDRESS_ENV, lab_extension_address
        connect = c.JupyterHub.hub_connect_ip
        c.ReesSwarmSpawner.rees_address = lab_extension_address(settings, connect)
        if settings.service_ip in LOOPBACK:
            for service in c.JupyterHub.services:
                if service["name"] == SERVICE_NAME:
                    service["environment"][SERVER_ADDRESS_ENV] = connect
