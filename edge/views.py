"""What ``predict`` and ``listen`` print: genre bars, a live redrawn view, JSON lines.

Plain functions that return strings (easy to test), and ``LiveView`` that redraws a block of
lines in place on a terminal (ANSI cursor-up + clear) or, when stdout is not a terminal, prints
one plain line per window instead.
"""
from __future__ import annotations

import json
import math
import sys

BAR_WIDTH = 30
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``width`` cells for a fraction in [0, 1], with eighth-cell resolution."""
    if not math.isfinite(fraction):
        fraction = 0.0
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part else "")
    return text.ljust(width)


def genre_bars(ranking, width: int = BAR_WIDTH, indent: str = "  ") -> list[str]:
    """One line per (label, probability): name, bar, percentage. Order is kept as given."""
    ranking = list(ranking)
    name_w = max((len(k) for k, _ in ranking), default=0)
    return [f"{indent}{k:<{name_w}} {bar(p, width)} {100 * p:5.1f}%" for k, p in ranking]


def track_report(name: str, result, width: int = BAR_WIDTH) -> str:
    """The paper's display for one file: the top genre, then a bar per genre, most likely first."""
    if result.silent:
        return f"{name}: no music (every window below the silence level)"
    head = f"{name}: {result.label} ({100 * result.confidence:.1f}%)"
    note = []
    if result.padded:
        note.append("shorter than one window: zero-padded")
    silent = sum(d.silent for d in result.decisions)
    if silent:
        note.append(f"{silent} of {len(result.decisions)} windows silent")
    if note:
        head += "  [" + "; ".join(note) + "]"
    return "\n".join([head] + genre_bars(result.ranking(), width))


def level_meter(dbfs: float, width: int = 20, floor: float = -60.0) -> str:
    """A level bar from ``floor`` dBFS (empty) to 0 dBFS (full), and the number."""
    shown = "-inf" if not math.isfinite(dbfs) else f"{dbfs:5.1f}"
    frac = 0.0 if not math.isfinite(dbfs) else (dbfs - floor) / -floor
    return f"[{bar(frac, width)}] {shown} dBFS"


# ----------------------------------------------------------------------------- JSON records
# The one vocabulary of a decision, in every interface (predict --json, listen --json, tag's rows,
# the HTTP API): ``genre``, ``confidence``, ``probabilities`` ({label: p}) and, where a decision
# has a smoothed form, ``smoothed_genre``, ``smoothed_confidence``, ``smoothed_probabilities``.
# The shapes are built by ``Decision.to_dict`` and ``TrackResult.to_dict`` (edge.classifier).

#: Deprecated: the names ``predict --json`` and ``listen --json`` used before the one vocabulary
#: (edge-genre 0.1), each mapped to the key it is the old name of. ``to_dict`` still emits them
#: beside the new keys, with the same values, so that scripts reading them keep working for one
#: release; they will be removed in the release after. The HTTP API never had them.
DEPRECATED_KEYS = {"label": "genre", "probs": "probabilities", "smoothed_label": "smoothed_genre"}


def with_deprecated_keys(record: dict) -> dict:
    """``record`` plus the deprecated old name (``DEPRECATED_KEYS``) of each of its keys that has
    one, with the same value."""
    return {**record, **{old: record[new] for old, new in DEPRECATED_KEYS.items() if new in record}}


def predict_record(path, result, model: str, backend: str, windows: bool = False) -> dict:
    """``predict --json``'s object for one classified file: its name, the track's decision
    (``TrackResult.to_dict``, every window's too with ``windows``), the model file and backend."""
    return {"file": path, **result.to_dict(windows=windows), "model": model, "backend": backend}


def listen_record(decision, device_rate: int, overflows: int, now: float) -> dict:
    """``listen --json``'s object for one window: the decision (``Decision.to_dict``), the rate
    the device was opened at, the input overflows so far and the wall-clock time (Unix seconds)."""
    return {**decision.to_dict(), "device_rate": device_rate, "overflows": overflows,
            "time": round(now, 3)}


def json_line(obj: dict) -> str:
    """One compact JSON object on one line (NaN/inf become null)."""
    return json.dumps(_finite(obj), separators=(",", ":"), ensure_ascii=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def live_screen(decision, source: str, overflows: int, width: int = BAR_WIDTH) -> list[str]:
    """The lines of the live view for the latest window."""
    if decision.silent:
        now = "no music"
        smooth = "no music"
    else:
        now = f"{decision.label} ({100 * decision.confidence:.0f}%)"
        smooth = f"{decision.smoothed_label} ({100 * decision.smoothed_confidence:.0f}%)"
    ranking = sorted(zip(decision.labels, decision.smoothed if not decision.silent
                         else decision.probs), key=lambda kv: -kv[1])
    lines = [
        f"edge-genre listen  {source}",
        f"  genre now : {now}",
        f"  smoothed  : {smooth}",
        f"  level     : {level_meter(decision.level_dbfs)}",
        f"  window {decision.index} at {decision.start:.1f}-{decision.end:.1f} s, "
        f"latency {decision.latency_ms:.1f} ms, overflows {overflows}",
    ]
    return lines + genre_bars(ranking, width)


def live_line(decision, overflows: int) -> str:
    """One plain line per window, for a stdout that is not a terminal."""
    if decision.silent:
        what = "no music"
    else:
        what = (f"{decision.label} {100 * decision.confidence:.0f}% "
                f"(smoothed {decision.smoothed_label} {100 * decision.smoothed_confidence:.0f}%)")
    return (f"{decision.start:7.1f}s  {what}  level {decision.level_dbfs:.1f} dBFS  "
            f"latency {decision.latency_ms:.1f} ms" + (f"  overflows {overflows}" if overflows else ""))


class LiveView:
    """Redraws the live screen in place on a terminal; plain lines otherwise."""

    def __init__(self, stream=None, redraw: bool | None = None):
        self.stream = stream or sys.stdout
        self.redraw = self.stream.isatty() if redraw is None else redraw
        self._drawn = 0

    def show(self, decision, source: str, overflows: int) -> None:
        if not self.redraw:
            print(live_line(decision, overflows), file=self.stream, flush=True)
            return
        lines = live_screen(decision, source, overflows)
        # Cursor to the start of the block drawn last time, clear to the end, draw again.
        prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.stream.write(prefix + "\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)

    def waiting(self, source: str) -> None:
        msg = f"edge-genre listen  {source}\n  listening: the first window completes after one window of audio"
        if self.redraw:
            self.stream.write(msg + "\n")
            self.stream.flush()
            self._drawn = 2
        else:
            print(msg.splitlines()[1].strip(), file=self.stream, flush=True)
