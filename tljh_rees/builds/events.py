"""Live build events: every phase change and log line, numbered, to file and listeners.

Listeners are bounded asyncio queues fed directly as lines arrive, so a line reaches a
server-sent-events client without any polling. A listener that falls behind (a stalled
client) is not fed further; its stream catches up from the log file, which holds every
event, so memory stays bounded and nothing is lost.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from ..store.logs import BuildLog, LogStore

FINAL_PHASES = ("built", "failed", "cancelled")
LISTENER_QUEUE = 1000  # events a listener may have waiting before it catches up from file


class Listener:
    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue(LISTENER_QUEUE)
        self.behind = False

    def put(self, event: dict | None) -> None:
        if self.behind:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.behind = True
            self.queue = asyncio.Queue(LISTENER_QUEUE)  # drop what waits; catch up from file
            self.queue.put_nowait(None)  # wake the stream up


class BuildEvents:
    """The event stream of one build while the service runs it."""

    def __init__(self, log: BuildLog, first_id: int = 1):
        self.log = log
        self.next_id = first_id
        self.listeners: set[Listener] = set()
        self.finished = False

    def publish(self, event: dict) -> dict:
        event = {"id": self.next_id, **event}
        self.next_id += 1
        self.log.append(event)
        for listener in self.listeners:
            listener.put(event)
        if event.get("type") == "phase" and event.get("phase") in FINAL_PHASES:
            self.finished = True
            self.log.close()
            for listener in self.listeners:
                listener.put(None)
        return event

    def line(self, text: str) -> None:
        self.publish({"type": "log", "message": text})

    def phase(self, phase: str, message: str = "") -> None:
        self.publish({"type": "phase", "phase": phase, "message": message})


async def stream(store: LogStore, build_id: str, live: BuildEvents | None,
                 after: int = 0) -> AsyncIterator[list[dict]]:
    """Batches of events after id ``after``: the stored ones, then live ones as they
    come (each batch is what is ready at once), until the final phase."""
    listener: Listener | None = None
    if live is not None and not live.finished:
        listener = Listener()
        live.listeners.add(listener)  # subscribe first: nothing falls between replay and live
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

    def stored() -> list[dict]:
        events = store.read(build_id)
        if live is not None and not live.finished:
            events += live.log.tail_events()
        return events

    try:
        batch = new(stored())
        if batch:
            yield batch
        if listener is None:
            return
        while True:
            ready = [await listener.queue.get()]
            while not listener.queue.empty():
                ready.append(listener.queue.get_nowait())
            if listener.behind:  # it fell behind: what it missed is in the file
                listener.behind = False
                batch = new(stored())
                if batch:
                    yield batch
                if live.finished:
                    return
                continue
            batch = new(e for e in ready if e is not None)
            if batch:
                yield batch
            if None in ready:  # the final phase was published
                return
    finally:
        if listener is not None and live is not None:
            live.listeners.discard(listener)
