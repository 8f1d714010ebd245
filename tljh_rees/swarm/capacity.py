"""What the swarm's nodes have, for templates' limits and pools' sizes.

On one machine those are checked against the machine (``catalog.templates.Machine``). In
multi-node mode a server runs on one node, so its limits must fit the largest usable node,
while pools together may take what all usable nodes have. Nodes join, leave and die, so
this is read from the manager when asked, at most every ``max_age`` seconds.
"""

from __future__ import annotations

import time

import docker

from .nodes import node_from


class SwarmMachine:
    """Duck-types ``Machine``: ``cpus``/``memory`` of the largest usable node, ``total_*``
    of all usable (ready, active) nodes together."""

    describe_one = "the largest node's"
    describe_all = "the swarm's ready nodes have"

    def __init__(self, api: docker.APIClient, max_age: float = 10):
        self.api = api
        self.max_age = max_age
        self._read_at = -max_age
        self._nodes: list[tuple[float, int]] = []

    def _usable(self) -> list[tuple[float, int]]:
        """(CPUs, memory bytes) of each usable node."""
        if time.monotonic() - self._read_at >= self.max_age:
            self._nodes = [
                (resources.get("NanoCPUs", 0) / 1e9, resources.get("MemoryBytes", 0))
                for attrs in self.api.nodes()
                if node_from(attrs).usable
                for resources in [(attrs.get("Description") or {}).get("Resources") or {}]]
            self._read_at = time.monotonic()
        return self._nodes or [(0.0, 0)]

    @property
    def cpus(self) -> float:
        return max(cpus for cpus, _ in self._usable())

    @property
    def memory(self) -> int:
        return max(memory for _, memory in self._usable())

    @property
    def total_cpus(self) -> float:
        return sum(cpus for cpus, _ in self._usable())

    @property
    def total_memory(self) -> int:
        return sum(memory for _, memory in self._usable())
