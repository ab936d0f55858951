"""The progress view across cells: done / running / failed / pending, elapsed, ETA.

On a terminal one line is redrawn in place; otherwise (a log file, CI) a line is printed
whenever a cell starts or ends. The ETA is a rough rule: the mean wall time of the cells
finished in this session times the cells left, divided by the cells run at once.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """``75.0`` → ``1m15s``; ``3725`` → ``1h02m``; NaN → ``?``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def eta(cell_seconds: list[float], left: int, parallel: int) -> float:
    """Seconds until ``left`` more cells are done, ``parallel`` at a time (NaN before any
    cell has finished)."""
    if left == 0:
        return 0.0
    if not cell_seconds:
        return math.nan
    return sum(cell_seconds) / len(cell_seconds) * left / max(1, min(parallel, left))


def format_line(done: int, running: int, failed: int, total: int, elapsed: float, left: float):
    pending = total - done - running - failed
    return (
        f"cells: {done}/{total} done · {running} running · {failed} failed · "
        f"{pending} pending · {format_seconds(elapsed)} elapsed · ETA {format_seconds(left)}"
    )


class Progress:
    """Counts cells of one sweep and shows them (``enabled=False``: silent)."""

    def __init__(self, total: int, parallel: int, enabled: bool = True, stream: TextIO = None):
        self.total, self.parallel, self.enabled = total, parallel, enabled
        self.stream = stream or sys.stderr
        self.done = self.running = self.failed = 0
        self.seconds: list[float] = []
        self.start = time.perf_counter()
        self.tty = self.enabled and self.stream.isatty()
        self.drawn = 0.0

    def started(self, label: str) -> None:
        self.running += 1
        self._show(f"start {label}")

    def finished(self, label: str, state: str, seconds: float, error: str = "") -> None:
        self.running -= 1
        if state == "done":
            self.done += 1
            self.seconds.append(seconds)
        else:
            self.failed += 1
        self._show(f"{state} {label} ({format_seconds(seconds)})" + (f": {error}" if error else ""))

    def tick(self) -> None:
        """Redraw the terminal line (elapsed, ETA) about once a second between events."""
        if self.tty and time.perf_counter() - self.drawn >= 1.0:
            self._show("")

    def line(self) -> str:
        left = self.total - self.done - self.failed
        elapsed = time.perf_counter() - self.start
        return format_line(
            self.done,
            self.running,
            self.failed,
            self.total,
            elapsed,
            eta(self.seconds, left, self.parallel),
        )

    def _show(self, event: str) -> None:
        if not self.enabled:
            return
        self.drawn = time.perf_counter()
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
            if event.startswith("failed"):
                self.stream.write("\n" + event + "\n")
        else:
            self.stream.write(f"{event}\n  {self.line()}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
