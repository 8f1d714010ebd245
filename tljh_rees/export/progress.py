"""Progress of the long steps (export, squashfs, upload) for a terminal or a job record."""

from __future__ import annotations

import sys
import time


class Progress:
    """Receives steps and their advance; this base class keeps the state and says nothing.

    ``step(name, total, unit)`` starts a step whose size is ``total`` (in ``unit``:
    "bytes" or "percent") when known; ``advance(done)`` reports how much of it is done;
    ``note(text)`` is a message worth showing (a tool's line of output, a decision).
    """

    def __init__(self):
        self.name = ""
        self.total: int | None = None
        self.unit = "bytes"
        self.done = 0

    def step(self, name: str, total: int | None = None, unit: str = "bytes") -> None:
        self.name, self.total, self.unit, self.done = name, total, unit, 0

    def advance(self, done: int) -> None:
        self.done = done

    def note(self, text: str) -> None:
        pass

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class TerminalProgress(Progress):
    """Writes steps to stderr: a live line on a terminal, a line per 10% otherwise."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_shown = 0.0
        self._last_decile = -1
        self._started = time.monotonic()

    def step(self, name: str, total: int | None = None, unit: str = "bytes") -> None:
        self._end_live_line()
        super().step(name, total, unit)
        self._started = time.monotonic()
        self._last_decile = -1
        self.stream.write(f"==> {name}\n")
        self.stream.flush()

    def advance(self, done: int) -> None:
        super().advance(done)
        fraction = self.fraction
        if self.live:
            now = time.monotonic()
            if now - self._last_shown < 0.2 and fraction != 1.0:
                return
            self._last_shown = now
            self.stream.write("\r    " + self._status() + "\033[K")
            self.stream.flush()
        elif fraction is not None and int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            self.stream.write("    " + self._status() + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        self._end_live_line()
        self.stream.write(f"    {text}\n")
        self.stream.flush()

    def finish(self) -> None:
        self._end_live_line()

    def _status(self) -> str:
        elapsed = time.monotonic() - self._started
        percent = f"{self.fraction * 100:3.0f}%" if self.fraction is not None else ""
        if self.unit == "percent":
            return f"{percent} ({elapsed:.0f}s)"
        amount = human_size(self.done)
        if self.total:
            amount += f" of {human_size(self.total)}"
        return f"{amount} {percent} ({elapsed:.0f}s)"

    def _end_live_line(self) -> None:
        if self.live and self._last_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._last_shown = 0.0
