"""Builds in multi-node mode: repo2docker on the manager, then a push to the registry.

A build counts as built only once the registry holds its image, so every node can pull
what the catalog lists; a registry that is down fails the build with that reason.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import docker
from traitlets import Unicode

from ..builds.builder import BuildFailed
from ..builds.repo2docker import Repo2DockerBuilder
from .registry import Registry, RegistryUnavailable, push


class SwarmBuilder(Repo2DockerBuilder):
    publishes = True
    registry_address = Unicode("", config=True, help="host:port of the registry.")
    registry_username = Unicode("", config=True)
    registry_password = Unicode("", config=True, help="Never logged.")

    _api = None

    @property
    def registry(self) -> Registry:
        return Registry(self.registry_address, self.registry_username, self.registry_password)

    def api(self) -> docker.APIClient:
        if self._api is None:
            self._api = docker.APIClient(version="auto", timeout=300,
                                         **docker.utils.kwargs_from_env())
        return self._api

    async def publish(self, image: str, on_line: Callable[[str], None]) -> str:
        if not self.registry_address:
            raise BuildFailed("multi-node mode has no registry configured (rees.swarm)")
        on_line(f"pushing {image} to the registry {self.registry_address}\n")
        try:
            ref = await asyncio.to_thread(push, self.api(), image, self.registry, on_line)
        except RegistryUnavailable as e:
            raise BuildFailed(str(e)) from None
        on_line(f"pushed {ref}\n")
        return ref
