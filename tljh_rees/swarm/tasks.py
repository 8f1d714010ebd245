"""Waiting for a Swarm service's task: the one loop the spawner (servers, volume
preparation) and the add-on services' runner share.

Swarm answers a new service at once and then moves its task through ``pending`` (no
node yet, or none fits), ``preparing`` (pulling), ``starting`` (running, but not yet
healthy when the service has a health check) to ``running``, or to an end state.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

UNSCHEDULABLE = "no suitable node"
FINISHED = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


class Unschedulable(RuntimeError):
    """No node fits the task (Swarm's reason is the message)."""


class TaskTimeout(RuntimeError):
    """The task did not settle in time; ``task`` is the last one seen."""

    def __init__(self, task: dict | None):
        super().__init__("timeout")
        self.task = task


async def newest_task(api, service: str) -> dict | None:
    tasks = await asyncio.to_thread(api.tasks, filters={"service": service})
    return max(tasks, key=lambda t: t["CreatedAt"]) if tasks else None


async def wait_task(api, service: str, settled: Callable[[str], bool],
                    unschedulable_grace: float, expired: Callable[[dict], bool] | None = None
                    ) -> dict:
    """The newest task of ``service`` once ``settled(state)``. Unschedulable when no
    node has fitted it for ``unschedulable_grace`` seconds; TaskTimeout once
    ``expired(task)`` (asked each round)."""
    unschedulable_since = None
    pause = 0.2
    while True:
        task = await newest_task(api, service)
        if task is not None:
            status = task["Status"]
            if settled(status["State"]):
                return task
            if status["State"] == "pending" and UNSCHEDULABLE in (status.get("Err") or ""):
                unschedulable_since = unschedulable_since or time.monotonic()
                if time.monotonic() - unschedulable_since > unschedulable_grace:
                    raise Unschedulable(status["Err"])
            if expired is not None and expired(task):
                raise TaskTimeout(task)
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 2)
