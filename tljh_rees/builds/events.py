"""Live build events: every phase change and log line, numbered, to file and listeners.

Listeners are asyncio queues fed directly as lines arrive, so a line reaches a
server-sent-events client without any polling.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from ..store.logs import BuildLog, LogStore

FINAL_PHASES = ("built", "failed", "cancelled")


class BuildEvents:
    """The event stream of one build while the service runs it."""

    def __init__(self, log: BuildLog, first_id: int = 1):
        self.log = log
        self.next_id = first_id
        self.listeners: set[asyncio.Queue] = set()
        self.finished = False

    def publish(self, event: dict) -> dict:
        event = {"id": self.next_id, **event}
        self.next_id += 1
        self.log.append(event)
        for queue in self.listeners:
            queue.put_nowait(event)
        if event.get("type") == "phase" and event.get("phase") in FINAL_PHASES:
            self.finished = True
            self.log.close()
            for queue in self.listeners:
                queue.put_nowait(None)
        return event

    def line(self, text: str) -> None:
        self.publish({"type": "log", "message": text})

    def phase(self, phase: str, message: str = "") -> None:
        self.publish({"type": "phase", "phase": phase, "message": message})


async def stream(store: LogStore, build_id: str, live: BuildEvents | None,
                 after: int = 0) -> AsyncIterator[list[dict]]:
    """Batches of events after id ``after``: the stored ones, then live ones as they
    come (each batch is what is ready at once), until the final phase."""
    queue: asyncio.Queue | None = None
    if live is not None and not live.finished:
        queue = asyncio.Queue()
        live.listeners.add(queue)  # subscribe first, so nothing falls between replay and live
    seen = after

    def new(events) -> list[dict]:
        nonlocal seen
        batch = []
        for event in events:
            if event.get("id") is None:  # the note of lines a capped log left out
                batch.append(event)
            elif event["id"] > seen:
                seen = event["id"]
                batch.append(event)
        return batch

    try:
        replay = store.read(build_id)
        if live is not None and not live.finished:
            replay += live.log.tail_events()
        batch = new(replay)
        if batch:
            yield batch
        if queue is None:
            return
        while True:
            ready = [await queue.get()]
            while not queue.empty():
                ready.append(queue.get_nowait())
            ended = None in ready
            batch = new(e for e in ready if e is not None)
            if batch:
                yield batch
            if ended:
                return
    finally:
        if queue is not None and live is not None:
            live.listeners.discard(queue)
