"""Faults in the fast tier: a build log whose disk fills up, a build whose engine went
away. The same faults against the real engine, Hub and a full filesystem are in
tests/test_faults.py."""

from __future__ import annotations

import errno
import json
import os

from tljh_rees.builds.events import BuildEvents
from tljh_rees.builds.manager import ENGINE_DOWN
from tljh_rees.builds.request import BuildRequest
from tljh_rees.fakes import FakeSource
from tljh_rees.store import logs as logs_module
from tljh_rees.store.logs import LogStore

from .conftest import ALICE
from .test_build_queue import SHA1, finished


class DiskFull:
    """The ``os`` module as logs.py sees it, on a disk with ``room`` bytes left: a write
    that does not fit writes what fits (as the kernel does), the next fails (ENOSPC)."""

    def __init__(self, room: int):
        self.room = room

    def write(self, fd, data):
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, bytes(data[:self.room]))
        self.room -= written
        return written

    def ftruncate(self, fd, size):
        self.room += max(0, os.fstat(fd).st_size - size)  # cutting back frees room
        os.ftruncate(fd, size)

    def __getattr__(self, name):
        return getattr(os, name)


def lines_of(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.endswith("\n"), "a torn last line"
    return [json.loads(line) for line in text.splitlines()]


def test_a_full_disk_leaves_whole_lines_and_the_end_of_the_log(tmp_path, monkeypatch):
    store = LogStore(directory=str(tmp_path))
    events = BuildEvents(store.open("b1"))
    events.phase("queued")
    disk = DiskFull(room=3000)
    monkeypatch.setattr(logs_module, "os", disk)
    for i in range(200):
        events.line(f"line {i:03d} " + "x" * 30 + "\n")
    assert events.log.error.errno == errno.ENOSPC
    kept = lines_of(tmp_path / "b1.jsonl")
    assert kept[-1]["message"].startswith("line ")  # cut back to the last whole event

    disk.room = 0  # still full when the build ends: the last lines make room for the end
    events.phase("failed", "no space left for the build log")
    ended = lines_of(tmp_path / "b1.jsonl")
    assert len(ended) < len(kept)
    assert "the log stops here" in ended[-2]["message"] and ended[-2]["id"] is None
    assert ended[-1]["phase"] == "failed"
    ids = [e["id"] for e in ended if e["id"] is not None]
    assert ids == sorted(ids) and ids[0] == 1
    assert [e["id"] for e in store.read("b1")] == [e["id"] for e in ended]


def test_a_log_that_cannot_be_opened_keeps_why(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    events = BuildEvents(LogStore(directory=str(blocker)).open("b2"))
    events.phase("queued")
    events.phase("failed", "x")  # nothing raises
    assert isinstance(events.log.error, OSError)


def test_a_torn_line_from_before_does_not_stop_reading(tmp_path):
    (tmp_path / "b3.jsonl").write_text('{"id": 1, "type": "phase", "phase": "queued"}\n'
                                       '{"id": 2, "type": "log", "mess')
    assert [e["id"] for e in LogStore(directory=str(tmp_path)).read("b3")] == [1]


async def test_the_queue_stops_a_build_whose_log_cannot_be_written(manager, builder,
                                                                   monkeypatch):
    monkeypatch.setattr(logs_module, "os", DiskFull(room=0))
    source = FakeSource("https://example.org/r", {"main": SHA1})
    build = await manager.submit(BuildRequest(source=source, ref="main", name="env",
                                              requester=ALICE))
    done = await finished(manager, build.id)
    assert done.status == "failed" and "no space left" in done.error
    assert builder.runs == []  # stopped before the builder ran
    monkeypatch.undo()  # space is back
    again = await manager.submit(BuildRequest(source=source, ref="main", name="env",
                                              requester=ALICE))
    assert (await finished(manager, again.id)).status == "built"


async def test_a_failure_with_the_engine_gone_says_so(manager, builder, images, monkeypatch):
    builder.fail = "Error during build: Command '[docker buildx build ...]' returned 1"
    monkeypatch.setattr(images, "reachable", lambda: False, raising=False)
    source = FakeSource("https://example.org/r", {"main": SHA1})
    build = await manager.submit(BuildRequest(source=source, ref="main", name="env",
                                              requester=ALICE))
    assert (await finished(manager, build.id)).error == ENGINE_DOWN
    monkeypatch.undo()  # the engine answers: the builder's own words are kept
    source.versions["main"] = "2" * 40
    again = await manager.submit(BuildRequest(source=source, ref="main", name="env",
                                              requester=ALICE))
    assert (await finished(manager, again.id)).error == builder.fail
