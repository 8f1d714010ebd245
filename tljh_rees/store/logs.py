"""Build logs: one file of JSON-line events per build, capped so a runaway build
cannot fill the disk (the head is kept on disk, the tail in memory until the end).

A write that fails (no space left on the device) leaves no half line behind: the file
is cut back to its last whole event and :attr:`BuildLog.error` says what happened, so
the build queue can stop the build with that reason. Later log lines are not kept; the
build's last phase still is, after a note of why the log stops, in room made by
dropping the last lines if need be.
"""

from __future__ import annotations

import collections
import errno
import json
import os

ROOM_LINES = 256  # at most this many of the last lines are dropped to fit the log's end

from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable


class LogStore(LoggingConfigurable):
    directory = Unicode(config=True, help="Where build logs are written.")
    max_bytes = Int(4 * 1024 * 1024, config=True,
                    help="Largest log kept per build: half for its start, half for its end.")

    def path(self, build_id: str) -> str:
        return os.path.join(self.directory, f"{build_id}.jsonl")

    def open(self, build_id: str) -> "BuildLog":
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError:
            pass  # the log then records why its file cannot be opened
        return BuildLog(self.path(build_id), self.max_bytes)

    def read(self, build_id: str) -> list[dict]:
        try:
            with open(self.path(build_id), encoding="utf-8", errors="replace") as f:
                return [event for event in map(_parse, f) if event is not None]
        except FileNotFoundError:
            return []

    def prune(self, keep: set[str]) -> None:
        """Remove the logs of builds that are no longer recorded (e.g. of environments
        deleted before builds were deleted with them)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".jsonl") and name[:-len(".jsonl")] not in keep:
                self.remove(name[:-len(".jsonl")])

    def remove(self, build_id: str) -> None:
        try:
            os.remove(self.path(build_id))
        except FileNotFoundError:
            pass


def _parse(line: str) -> dict | None:
    """One event; None for a blank line or a torn one (a log cut short by a full disk
    before this module cut logs back, or by a crash of the machine), which would
    otherwise make every read of that build's log fail."""
    try:
        event = json.loads(line) if line.strip() else None
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class BuildLog:
    """Appends events; past ``max_bytes / 2`` new events wait in a bounded tail."""

    def __init__(self, path: str, max_bytes: int):
        self.path = path
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_bytes = 0
        self.dropped = 0
        self.error: OSError | None = None  # the first write (or open) that failed
        self.starts: collections.deque[int] = collections.deque(maxlen=ROOM_LINES)
        self.last_phase = b""  # the latest phase event, written last if writes failed
        try:
            self.fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                          0o666)
            self.written = os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as e:
            self.fd, self.written, self.error = None, 0, e

    def append(self, event: dict) -> None:
        line = (json.dumps(event) + "\n").encode()
        if event.get("type") == "phase":
            self.last_phase = line
        if self.error is not None:
            return  # the log stops at the failed write; close() writes its end
        if self.written + len(line) <= self.head_limit and not self.tail:
            start = self.written
            if self._write(line) is None:
                self.starts.append(start)
            return
        self.tail.append(line)
        self.tail_bytes += len(line)
        while self.tail_bytes > self.tail_limit and self.tail:
            self.tail_bytes -= len(self.tail.popleft())
            self.dropped += 1

    def tail_events(self) -> list[dict]:
        return [json.loads(line) for line in self.tail]

    def close(self) -> None:
        """Write the kept tail after a note of how much was left out; or, after a failed
        write, a note of why the log stops and the last phase."""
        if self.error is None and (self.tail or self.dropped):
            lines = list(self.tail)
            if self.dropped:
                note = {"type": "log", "id": None,
                        "message": f"[... {self.dropped} log lines left out: the log is "
                                   f"capped at {self.head_limit + self.tail_limit} bytes "
                                   "...]\n"}
                lines.insert(0, (json.dumps(note) + "\n").encode())
            self._write(b"".join(lines))
        if self.error is not None:
            self._write_end()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.tail.clear()

    def _write(self, data: bytes) -> OSError | None:
        """Append ``data`` whole; or leave the file as it was, keep the first error and
        return this one."""
        if self.fd is None:
            return self.error or OSError(errno.EBADF, os.strerror(errno.EBADF))
        try:
            view = memoryview(data)
            while view:  # a write may be cut short when the disk fills up
                view = view[os.write(self.fd, view):]
        except OSError as e:
            self.error = self.error or e
            self._cut(self.written)
            return e
        self.written += len(data)
        return None

    def _cut(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            pass

    def _write_end(self) -> None:
        """Why the log stops here, then the last phase: dropping the last lines until
        they fit, as a full disk has no room for them otherwise."""
        note = {"type": "log", "id": None,
                "message": f"[... the log stops here: it could not be written "
                           f"({self.error.strerror or self.error}) ...]\n"}
        end = (json.dumps(note) + "\n").encode() + self.last_phase
        while (failure := self._write(end)) is not None and self.starts \
                and failure.errno in (errno.ENOSPC, errno.EDQUOT):
            self.written = self.starts.pop()
            self._cut(self.written)
