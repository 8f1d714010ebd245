"""Stopping a crashed service's build processes, and only those."""

from __future__ import annotations

import json
import subprocess
import time

from tljh_rees.builds.orphans import ProcessNotes


def start_group() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def gone(proc: subprocess.Popen, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_a_noted_build_process_is_stopped_by_the_next_service(tmp_path):
    notes = ProcessNotes(str(tmp_path))
    proc = start_group()
    notes.remember("b1", proc.pid)
    assert notes.stop_orphan("b1") is True
    assert gone(proc)
    assert not (tmp_path / "b1").exists()


def test_a_reused_process_id_is_left_alone(tmp_path):
    """After a reboot, or much later, the noted number may belong to another process."""
    notes = ProcessNotes(str(tmp_path))
    proc = start_group()
    try:
        for change in ({"boot_id": "another-boot"}, {"start_time": "1"}):
            notes.remember("b2", proc.pid)
            note = json.loads((tmp_path / "b2").read_text())
            (tmp_path / "b2").write_text(json.dumps({**note, **change}))
            assert notes.stop_orphan("b2") is False
            assert proc.poll() is None, f"a process was stopped although {change} differs"
    finally:
        proc.kill()
        proc.wait()


def test_a_missing_or_broken_note_is_harmless(tmp_path):
    notes = ProcessNotes(str(tmp_path))
    assert notes.stop_orphan("never") is False
    (tmp_path / "bad").write_text("{not json")
    assert notes.stop_orphan("bad") is False and not (tmp_path / "bad").exists()
