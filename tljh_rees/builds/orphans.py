"""Remember a build's process group so that the next service can stop it after a crash.

A process id alone is not enough: after a reboot (or just much later) the same number
may belong to anything. So the note also holds the kernel's boot id and the process's
start time, and a group is only stopped when both still match.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


class ProcessNotes:
    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key)

    def remember(self, key: str, pid: int) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        note = {"pid": pid, "boot_id": _boot_id(), "start_time": _start_time(pid)}
        with open(self._path(key), "w") as f:
            json.dump(note, f)

    def forget(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(key))

    def stop_orphan(self, key: str) -> bool:
        """Stop the noted process group if it is still the one noted; forget the note."""
        stopped = False
        try:
            with open(self._path(key)) as f:
                note = json.load(f)
            pid = int(note["pid"])
            if note["boot_id"] and note["boot_id"] == _boot_id() \
                    and note["start_time"] and note["start_time"] == _start_time(pid):
                os.killpg(pid, signal.SIGTERM)
                stopped = True
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.forget(key)
        return stopped
