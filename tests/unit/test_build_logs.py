"""Build logs: capped files that keep the start and the end; event streams."""

import asyncio

from tljh_rees.builds.events import BuildEvents, stream
from tljh_rees.store.logs import LogStore


def test_a_runaway_log_keeps_its_head_and_tail_within_the_cap(tmp_path):
    store = LogStore(directory=str(tmp_path), max_bytes=20_000)
    events = BuildEvents(store.open("b1"))
    for i in range(5000):
        events.line(f"line {i:05d} " + "x" * 40 + "\n")
    events.phase("built", "done")
    size = (tmp_path / "b1.jsonl").stat().st_size
    assert size <= 20_000 + 500  # the cap, plus the note of what was left out
    messages = [e.get("message", "") for e in store.read("b1")]
    assert messages[0].startswith("line 00000")
    assert any("log lines left out" in m for m in messages)
    assert messages[-2].startswith("line 04999") and messages[-1] == "done"


def test_late_listener_gets_replay_then_live_events_then_the_end(tmp_path):
    store = LogStore(directory=str(tmp_path), max_bytes=1_000_000)

    async def scenario():
        events = BuildEvents(store.open("b2"))
        events.phase("queued")
        events.line("first\n")
        received = []

        async def listen():
            async for batch in stream(store, "b2", events, after=0):
                received.extend(batch)

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.01)
        events.line("second\n")
        events.phase("built")
        await asyncio.wait_for(task, 5)
        return received

    received = asyncio.run(scenario())
    assert [e["id"] for e in received] == [1, 2, 3, 4]
    assert [e.get("message") for e in received][1:3] == ["first\n", "second\n"]

    async def resume():
        return [e async for batch in stream(store, "b2", None, after=2) for e in batch]

    assert [e["id"] for e in asyncio.run(resume())] == [3, 4]


def test_a_listener_that_stops_reading_holds_a_bounded_queue_and_misses_nothing(tmp_path):
    """A stalled client: its queue stops growing at the bound; when it reads again, the
    stream catches up from the log file, in order, to the final phase."""
    from tljh_rees.builds.events import LISTENER_QUEUE

    store = LogStore(directory=str(tmp_path), max_bytes=10_000_000)

    async def scenario():
        events = BuildEvents(store.open("b3"))
        events.phase("running")
        batches = stream(store, "b3", events).__aiter__()
        first = await batches.__anext__()  # subscribed; now it stops reading
        for i in range(LISTENER_QUEUE * 5):
            events.line(f"line {i}\n")
        (listener,) = events.listeners
        assert listener.queue.qsize() <= LISTENER_QUEUE  # bounded while nobody reads
        events.phase("built", "done")
        rest = [e async for batch in batches for e in batch]
        return first + rest

    received = asyncio.run(scenario())
    ids = [e["id"] for e in received]
    assert ids == list(range(1, LISTENER_QUEUE * 5 + 3))  # every event once, in order
    assert received[-1]["phase"] == "built"
