"""Native libraries' stderr lines kept off the terminal: one line per event, ours.

PortAudio's ALSA host API prints "Expression '...' failed in 'src/hostapi/alsa/...'" from its own
thread when a capture device vanishes; libmpg123 (inside libsndfile) prints "[src/libmpg123/...]
error: ..." and "Note: Trying to resync..." for every damaged MP3 frame; Ray's C++ core and the
processes it starts print their own logs. They write straight to file descriptor 2, where no
Python code sees them, between the lines ``predict``, ``tag`` and ``listen`` write about the same
events. ``divert()`` points descriptor 2 at a pipe for the length of a command (child processes
started meanwhile inherit it) and moves Python's own stderr (``sys.stderr`` and the
``edge_genre`` log handlers on it) to a copy of the terminal's descriptor; a thread reads the
pipe and logs each native line at DEBUG on ``edge_genre.native``, so ``-v`` still shows them;
lines of ours that child processes write there (``edge-genre: WARNING: ...``) go to the terminal.
A crash must not be lost in the pipe (its reader dies with the process): for the length of the
command Python's fault handler writes to the terminal's copy, so a segmentation fault in a native
library still prints "Fatal Python error" and the stack where the user sees it.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
from contextlib import contextmanager

log = logging.getLogger("edge_genre.native")


#: How our own lines start: a child process's (``tag``'s workers log warnings to their stderr,
#: which is this pipe) are passed through to the terminal unchanged.
OURS = "edge-genre"


def _pump(fd: int, terminal) -> None:
    with os.fdopen(fd, "rb") as pipe:
        for raw in pipe:  # ends when every write end is closed (the command is over)
            line = raw.decode("utf-8", "replace").rstrip()
            if line.startswith(OURS):
                try:
                    print(line, file=terminal, flush=True)
                except (ValueError, OSError):  # closed: a child outlived the command
                    pass
            elif line:
                log.debug("native: %s", line)


@contextmanager
def divert():
    """Run the body with native writes to fd 2 logged at DEBUG instead (see the module)."""
    try:
        sys.stderr.flush()
        ours = sys.stderr.fileno() == 2  # not when stderr is captured in memory (tests, IDEs)
        saved = os.dup(2) if ours else None
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded): leave it
        ours = False
    if not ours:
        yield
        return
    old = sys.stderr
    terminal = os.fdopen(os.dup(saved), "w", buffering=1,
                         encoding=getattr(old, "encoding", None) or "utf-8", errors="replace")
    handlers = [h for h in logging.getLogger("edge_genre").handlers
                if isinstance(h, logging.StreamHandler) and h.stream is old]
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, terminal), name="native-stderr",
                            daemon=True)
    pump.start()
    sys.stderr = terminal
    for h in handlers:
        h.setStream(terminal)
    faults_were_on = faulthandler.is_enabled()
    faulthandler.enable(file=terminal, all_threads=True)
    try:
        yield
    finally:
        if faults_were_on:
            faulthandler.enable(file=old, all_threads=True)
        else:
            faulthandler.disable()
        for h in handlers:
            h.setStream(old)
        sys.stderr = old
        terminal.flush()
        os.dup2(saved, 2)  # the pipe's last write end here: the pump reads to its end
        os.close(saved)
        pump.join(timeout=1.0)  # a child still holding the pipe must not hold up the exit
        terminal.close()
