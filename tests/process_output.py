"""Following a test's child process's output: copied to a log file line by line as it comes,
with a wait for a line to appear, so that a test synchronises on what the process says instead of
polling a file. Used by the serve harness (the address line) and the virtual microphone (the
PulseAudio daemon's start-up line)."""
from __future__ import annotations

import threading
from pathlib import Path


class LogFollower:
    """Copies a process's output to a log file as it comes, line by line, and lets a test wait
    for a line to appear (``wait_for``) instead of polling the file."""

    def __init__(self, stream, log_path: Path):
        self.text = ""
        self.ended = False
        self._changed = threading.Condition()
        log = open(log_path, "w")  # here, not in the thread: the file exists once this returns
        self._thread = threading.Thread(target=self._copy, args=(stream, log), daemon=True)
        self._thread.start()

    def _copy(self, stream, log) -> None:
        with log:
            for raw in stream:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                with self._changed:
                    self.text += line
                    self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, found, timeout: float) -> bool:
        """Wait until ``found(text)`` holds for the output so far, the output ends or ``timeout``
        seconds pass; whether it holds."""
        with self._changed:
            self._changed.wait_for(lambda: found(self.text) or self.ended, timeout)
            return bool(found(self.text))

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)
