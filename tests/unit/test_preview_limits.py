"""A flood of spec previews cannot fork-bomb the machine.

Every builder may ask for previews and each one is a process. The previewer's command
is replaced by a fake one that records how many of its kind are running, then waits for
the test to let it finish: nothing here depends on how long anything takes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from tljh_rees.composer.errors import SpecError
from tljh_rees.composer.preview import Previewer

# argv: state folder, then what the previewer appends (the spec's folder, options).
FAKE_DETECT = """\
import json, os, sys, time
state = sys.argv[1]
me = os.path.join(state, f"running-{os.getpid()}")
open(me, "w").close()
running = sum(name.startswith("running-") for name in os.listdir(state))
with open(os.path.join(state, f"saw-{os.getpid()}"), "w") as f:
    f.write(str(running))
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
os.remove(me)
print(json.dumps({"buildpack": "PythonBuildPack", "dockerfile": "FROM x", "messages": [],
                  "error": None, "stage": None}))
"""

# Starts a grandchild in its process group, says its pid, and never finishes.
HANGING_DETECT = """\
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "600"])
with open(os.path.join(sys.argv[1], "grandchild"), "w") as f:
    f.write(str(child.pid))
time.sleep(600)
"""


async def until(condition, what: str, patience: float = 30.0) -> None:
    """Wait for ``condition()``; a generous bound only so a broken test cannot hang."""
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.02)


def names(state, prefix: str) -> list[str]:
    return [n for n in os.listdir(state) if n.startswith(prefix)]


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_previews_run_two_at_a_time_and_refuse_beyond_the_queue(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    previewer = Previewer(max_running=2, max_waiting=1,
                          detect_command=[sys.executable, "-c", FAKE_DETECT, str(state)])
    requests = [asyncio.create_task(previewer.preview_files(lambda directory: None))
                for _ in range(3)]
    try:
        # each child writes "saw-" after "running-": wait for both children's counts
        await until(lambda: len(names(state, "saw-")) == 2, "two previews to start")
        # two run, the third waits its turn: the fourth is refused without waiting
        with pytest.raises(SpecError) as refused:
            await previewer.preview_files(lambda directory: None)
        assert refused.value.status == 503 and refused.value.field == "preview"
        assert len(names(state, "running-")) == 2 and len(names(state, "saw-")) == 2
        (state / "go").touch()
        results = await asyncio.gather(*requests)
    finally:
        (state / "go").touch()
        await asyncio.gather(*requests, return_exceptions=True)
    assert [r["buildpack_label"].split(" ")[0] for r in results] == ["Python"] * 3
    seen = [int((state / name).read_text()) for name in names(state, "saw-")]
    assert len(seen) == 3 and max(seen) <= 2, seen  # every child counted the others running


async def test_a_preview_that_hangs_is_killed_with_what_it_started(tmp_path):
    previewer = Previewer(timeout=3,
                          detect_command=[sys.executable, "-c", HANGING_DETECT, str(tmp_path)])
    grandchild = None
    try:
        # the bound only keeps a broken previewer from hanging the test: the grandchild
        # holds the output pipes, so waiting for them alone would take its 600 s
        result = await asyncio.wait_for(previewer.preview_files(lambda directory: None), 30)
        grandchild = int((tmp_path / "grandchild").read_text())
        assert "longer than 3s" in result["error"]
        await until(lambda: not alive(grandchild), "the grandchild to be killed", 10)
    finally:
        if grandchild is None and (tmp_path / "grandchild").exists():
            grandchild = int((tmp_path / "grandchild").read_text())
        if grandchild is not None and alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)  # only ever the one this test started


async def test_a_free_slot_is_taken_at_once_and_released_after_errors(tmp_path):
    previewer = Previewer(max_running=1, max_waiting=0,
                          detect_command=[sys.executable, "-c", "print('not json')"])
    for _ in range(3):  # each finishes (with an error) and gives its slot back
        result = await previewer.preview_files(lambda directory: None)
        assert result["error"].startswith("repo2docker's detection failed")
