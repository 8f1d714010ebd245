"""What the manager knows of the swarm's nodes: addresses, state, the join command.

Only the manager's engine is asked (the Hub's machine); workers are never contacted
directly. A manager's own ``Status.Addr`` may read 0.0.0.0, so its swarm address is taken
from ``ManagerStatus.Addr`` then.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
from docker.errors import APIError, NotFound

READY = "ready"


class NotInSwarm(RuntimeError):
    """The engine is not a swarm manager; the message says how to make it one."""


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    address: str
    state: str  # ready, down, unknown, disconnected
    availability: str  # active, pause, drain

    @property
    def usable(self) -> bool:
        return self.state == READY and self.availability == "active"

    def describe(self) -> str:
        return f"{self.hostname} ({self.address}, node {self.id[:12]})"


def node_from(attrs: dict) -> Node:
    status = attrs.get("Status") or {}
    address = status.get("Addr") or ""
    if address in ("", "0.0.0.0"):
        address = ((attrs.get("ManagerStatus") or {}).get("Addr") or "").rsplit(":", 1)[0]
    return Node(attrs["ID"], (attrs.get("Description") or {}).get("Hostname") or "",
                address, status.get("State") or "unknown",
                (attrs.get("Spec") or {}).get("Availability") or "active")


def node(api: docker.APIClient, node_id: str) -> Node | None:
    try:
        return node_from(api.inspect_node(node_id))
    except NotFound:
        return None


def manager_address(api: docker.APIClient) -> str:
    """This engine's address on the swarm, or NotInSwarm."""
    swarm = api.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise NotInSwarm(
            "this machine's Docker engine is not a swarm manager, which multi-node mode "
            "(rees.swarm.enabled) needs; run 'docker swarm init --advertise-addr <this "
            "machine's address>' (or set rees.swarm.enabled to false)")
    return swarm.get("NodeAddr") or ""


def join_command(api: docker.APIClient, registry_address: str = "",
                 ca_file: str = "") -> str:
    """What an admin runs on a new machine to make it a worker of this swarm."""
    try:
        swarm = api.inspect_swarm()
    except APIError as e:
        raise NotInSwarm(f"this engine is not a swarm manager: {e.explanation or e}") from None
    address = manager_address(api)
    lines = [f"docker swarm join --token {swarm['JoinTokens']['Worker']} {address}:2377"]
    if registry_address and ca_file:
        with open(ca_file) as f:
            ca = f.read().strip()
        lines = [f"mkdir -p /etc/docker/certs.d/{registry_address}",
                 f"cat > /etc/docker/certs.d/{registry_address}/ca.crt <<'EOF'", ca, "EOF",
                 *lines]
    return "\n".join(lines)
