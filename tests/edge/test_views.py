"""Terminal output: bars, the per-file report, the live view (redrawn and plain), JSON lines."""
from __future__ import annotations

import io
import json

import numpy as np

from edge_genre.edge import views
from edge_genre.edge.classifier import Decision, TrackResult

LABELS = ("blues", "jazz", "metal")


def decision(probs, silent=False, index=0):
    probs = np.asarray(probs, np.float32)
    return Decision(index=index, start=2.0 * index, end=2.0 * index + 4, labels=LABELS,
                    probs=probs, smoothed=probs, level_dbfs=-20.0 if not silent else float("-inf"),
                    silent=silent, latency_ms=12.5)


def test_bar_widths():
    assert views.bar(0.0, 10) == " " * 10
    assert views.bar(1.0, 10) == "█" * 10
    assert views.bar(0.55, 10).rstrip() == "█████▌"
    assert len(views.bar(0.33, 30)) == 30
    assert views.bar(float("nan"), 5) == " " * 5


def test_track_report_top_genre_first():
    result = TrackResult(LABELS, [decision([0.1, 0.7, 0.2]), decision([0.1, 0.5, 0.4], index=1)], 6.0)
    lines = views.track_report("x.wav", result).splitlines()
    assert lines[0] == "x.wav: jazz (60.0%)"
    assert [line.split()[0] for line in lines[1:]] == ["jazz", "metal", "blues"]
    assert lines[1].endswith("60.0%")


def test_live_view_redraws_in_place():
    out = io.StringIO()
    view = views.LiveView(out, redraw=True)
    view.show(decision([0.2, 0.1, 0.7]), "pulse @ 44100 Hz", overflows=0)
    first = out.getvalue()
    assert "genre now : metal (70%)" in first and "\x1b[" not in first
    view.show(decision([0.0, 0.0, 0.0], silent=True, index=1), "pulse @ 44100 Hz", overflows=2)
    second = out.getvalue()[len(first):]
    assert second.startswith(f"\x1b[{len(first.splitlines())}F\x1b[J")  # back up, clear, redraw
    assert "no music" in second and "overflows 2" in second and "-inf dBFS" in second


def test_live_plain_lines():
    out = io.StringIO()
    views.LiveView(out, redraw=False).show(decision([0.2, 0.1, 0.7]), "src", overflows=0)
    line = out.getvalue().strip()
    assert "metal 70%" in line and "latency 12.5 ms" in line and "\n" not in line


def test_json_line_is_one_line_and_finite():
    d = decision([0.0, 0.0, 0.0], silent=True).to_dict()
    text = views.json_line(d)
    assert "\n" not in text
    back = json.loads(text)
    assert back["genre"] == "no music" and back["level_dbfs"] is None
