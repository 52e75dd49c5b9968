"""The tag run's progress bar: one line on a terminal, tracks done, rate and ETA."""
from __future__ import annotations

import shutil
import time


class Progress:
    """One line on a terminal (stderr), redrawn at most 5 times a second: a bar (once the
    total is known), tracks done, rate and ETA. Nothing at all when ``enabled`` is false."""

    def __init__(self, stream, enabled: bool):
        self.stream, self.enabled = stream, enabled
        self.start = time.monotonic()
        self.total: int | None = None  # tracks to classify (known when the count finishes)
        self._last = 0.0
        self._shown = False

    def _line(self, done: int, failed: int, skipped: int) -> str:
        elapsed = max(1e-9, time.monotonic() - self.start)
        rate = done / elapsed
        parts = []
        if self.total:
            frac = min(1.0, done / self.total)
            width = 20
            fill = int(frac * width)
            parts.append(f"[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}")
        else:
            parts.append(f"{done} tracks")
        parts.append(f"{rate:.2f} tracks/s")
        if self.total and rate > 0:
            parts.append(f"ETA {_clock(max(0, self.total - done) / rate)}")
        elif not self.total:
            parts.append("ETA: counting")
        if failed:
            parts.append(f"{failed} errors")
        if skipped:
            parts.append(f"{skipped} already done")
        return "  ".join(parts)

    def show(self, done: int, failed: int, skipped: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        cols = shutil.get_terminal_size((100, 20)).columns
        line = self._line(done, failed, skipped)[:max(10, cols - 1)]
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Clear the line before another message is printed."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def finish(self, done: int, failed: int, skipped: int) -> None:
        if self.enabled and self._shown:
            self.show(done, failed, skipped, force=True)
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def isatty(stream) -> bool:
    """Whether a stream is a terminal (the bar is drawn only there)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
