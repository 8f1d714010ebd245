"""The builder reads repo2docker's output whatever it writes, and never leaves it running.

A fake repo2docker (the builder's ``command`` trait) stands in for the real one: these
tests are about the pipe between them, not about builds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time

import pytest

from tljh_rees.builds.repo2docker import Repo2DockerBuilder


def fake_repo2docker(tmp_path, body: str) -> Repo2DockerBuilder:
    script = tmp_path / "fake_repo2docker.py"
    script.write_text("import json, os, subprocess, sys, time\n" + textwrap.dedent(body))
    return Repo2DockerBuilder(command=[sys.executable, str(script)])


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def gone_soon(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_a_huge_line_is_cut_and_the_build_goes_on(tmp_path):
    builder = fake_repo2docker(tmp_path, """
        sys.stdout.write("x" * 5_000_000 + "\\n")
        sys.stdout.write(json.dumps({"message": "y" * 3_000_000, "phase": "building"}) + "\\n")
        sys.stdout.write(json.dumps({"message": "after the long lines", "phase": "building"})
                         + "\\n")
    """)
    lines, procs = [], []
    asyncio.run(asyncio.wait_for(
        builder.build(str(tmp_path), "rees-fake:1", {}, lines.append, procs.append), 60))
    assert len(lines) == 3, [line[:80] for line in lines]
    assert lines[0].startswith("x" * 1000) and lines[0].endswith(" [line cut: 5.0 MB]\n")
    assert "[line cut: 3.0 MB]" in lines[1]
    assert all(len(line) < builder.max_line_bytes + 100 for line in lines)
    assert lines[2] == "after the long lines\n"
    assert procs[0].returncode == 0


def test_read_lines_splits_chunks_and_cuts_long_lines():
    from tljh_rees.builds.repo2docker import read_lines

    async def read(pieces: list[bytes], limit: int) -> list[str]:
        stream = asyncio.StreamReader()
        for piece in pieces:
            stream.feed_data(piece)
        stream.feed_eof()
        return [line async for line in read_lines(stream, limit, chunk=3)]

    assert asyncio.run(read([b"a\nbb", b"b\n", b"c" * 1500], 10)) == [
        "a\n", "bbb\n", "cccccccccc [line cut: 1.5 kB]\n"]
    assert asyncio.run(read([b"0123456789\n", b"\xc3\xa9\n"], 10)) == ["0123456789\n", "é\n"]


RUNS_UNTIL_STOPPED = """
    child = subprocess.Popen(["sleep", "300"])
    with open(sys.argv[-1] + "/../pids", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    print("first line", flush=True)
    time.sleep(300)
"""


def pids(tmp_path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


@pytest.fixture
def source(tmp_path):
    """The build's source directory (the fake writes its pids next to it)."""
    (tmp_path / "src").mkdir()
    yield str(tmp_path / "src")
    if (tmp_path / "pids").exists():  # never leave a test's processes behind
        for pid in pids(tmp_path):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_failing_reader_stops_the_process_group(tmp_path, source):
    builder = fake_repo2docker(tmp_path, RUNS_UNTIL_STOPPED)

    def on_line(text):
        raise RuntimeError("the log could not be written")

    with pytest.raises(RuntimeError, match="the log could not be written"):
        asyncio.run(asyncio.wait_for(builder.build(source, "rees-fake:1", {}, on_line), 60))
    leader, child = pids(tmp_path)
    assert gone_soon(leader) and gone_soon(child)


def test_a_cancelled_build_stops_the_process_group(tmp_path, source):
    builder = fake_repo2docker(tmp_path, RUNS_UNTIL_STOPPED)

    async def cancel_after_first_line():
        first = asyncio.Event()
        task = asyncio.create_task(builder.build(source, "rees-fake:1", {},
                                                 lambda text: first.set()))
        await asyncio.wait_for(first.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_after_first_line())
    leader, child = pids(tmp_path)
    assert gone_soon(leader) and gone_soon(child)
