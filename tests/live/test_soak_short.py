"""The 40-second version of the soak and fault benchmark (`benchmarks/live_cost.py`; the
30-minute run is in docs/reliability.md's table): `listen` through its own virtual microphone
for 40 s while a real excerpt plays, the microphone pulled 14 s in and plugged back 6 s later.
It must say so (device_lost, device_restored), go on deciding every hop outside the outage, keep
its memory flat, and stay light on the CPU (the reconnect itself restarts PortAudio, so the bound
here is looser than the steady-state test's 2 %)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_short_soak_with_the_microphone_pulled_and_restored():
    missing = [t for t in ("pulseaudio", "paplay", "pactl") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt install pulseaudio pulseaudio-utils)")
    proc = subprocess.run(
        [sys.executable, "-m", "edge_genre.benchmarks.live_cost", "--seconds", "40", "--every", "10",
         "--pull-at", "14", "--pull-for", "6", "--skip", "silence", "--skip", "offline", "--json"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)["live"][0]
    events = [e["event"] for e in live["events"]]
    assert "device_lost" in events and "device_restored" in events, live
    lost = next(e["at_seconds"] for e in live["events"] if e["event"] == "device_lost")
    restored = next(e["at_seconds"] for e in live["events"] if e["event"] == "device_restored")
    assert 12 <= lost <= 20 and lost < restored <= 38, live["events"]
    assert live["decisions"] >= 10  # about 20 in 40 s, less the outage
    assert live["max_gap_outside_outage_seconds"] < 4.0, live
    assert live["rss_growth_mib"] < 20, live
    assert live["core_percent"] < 5.0, live
    assert live["exit_code"] in (0, -2), live  # stopped with SIGINT at the end
