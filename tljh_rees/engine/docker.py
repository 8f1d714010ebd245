"""Access to the Docker engine through the docker SDK."""

from __future__ import annotations

import ipaddress
import subprocess

import docker
from docker.errors import DockerException


class EngineUnavailable(RuntimeError):
    """The Docker engine cannot be reached; the message says how to fix it."""


def client(timeout: int = 120) -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
        return c
    except DockerException as e:
        raise EngineUnavailable(
            "the Docker engine is not reachable (is dockerd running? "
            f"try 'tljh-rees setup-engine'): {e}"
        ) from e


def bridge_gateway() -> str | None:
    """The address of the default bridge network on the host (docker0), if any.

    Containers on the default network reach the host there, so the Hub listens on it.
    """
    try:
        network = client(timeout=10).networks.get("bridge")
        for entry in network.attrs.get("IPAM", {}).get("Config") or []:
            gateway = entry.get("Gateway")
            if gateway:
                return str(ipaddress.ip_address(gateway))
    except (EngineUnavailable, DockerException, ValueError):
        pass
    # The engine may not be up yet while the Hub's config loads: ask the kernel instead.
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"],
                         capture_output=True, text=True).stdout.split()
    if "inet" in out:
        return out[out.index("inet") + 1].split("/")[0]
    return None
