"""Build logs: one file of JSON-line events per build, capped so a runaway build
cannot fill the disk (the head is kept on disk, the tail in memory until the end)."""

from __future__ import annotations

import collections
import json
import os

from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable


class LogStore(LoggingConfigurable):
    directory = Unicode(config=True, help="Where build logs are written.")
    max_bytes = Int(4 * 1024 * 1024, config=True,
                    help="Largest log kept per build: half for its start, half for its end.")

    def path(self, build_id: str) -> str:
        return os.path.join(self.directory, f"{build_id}.jsonl")

    def open(self, build_id: str) -> "BuildLog":
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        return BuildLog(self.path(build_id), self.max_bytes)

    def read(self, build_id: str) -> list[dict]:
        try:
            with open(self.path(build_id), encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
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


class BuildLog:
    """Appends events; past ``max_bytes / 2`` new events wait in a bounded tail."""

    def __init__(self, path: str, max_bytes: int):
        self.path = path
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit
        self.file = open(path, "a", encoding="utf-8")
        self.written = self.file.tell()
        self.tail: collections.deque[str] = collections.deque()
        self.tail_bytes = 0
        self.dropped = 0

    def append(self, event: dict) -> None:
        line = json.dumps(event) + "\n"
        if self.written + len(line) <= self.head_limit and not self.tail:
            self.file.write(line)
            self.file.flush()
            self.written += len(line)
            return
        self.tail.append(line)
        self.tail_bytes += len(line)
        while self.tail_bytes > self.tail_limit and self.tail:
            self.tail_bytes -= len(self.tail.popleft())
            self.dropped += 1

    def tail_events(self) -> list[dict]:
        return [json.loads(line) for line in self.tail]

    def close(self) -> None:
        """Write the kept tail after a note of how much was left out."""
        if self.dropped:
            note = {"type": "log", "id": None,
                    "message": f"[... {self.dropped} log lines left out: the log is capped "
                               f"at {self.head_limit + self.tail_limit} bytes ...]\n"}
            self.file.write(json.dumps(note) + "\n")
        self.file.writelines(self.tail)
        self.file.close()
        self.tail.clear()
