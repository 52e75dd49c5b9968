"""What a device call sends must fit its 64 MiB: the tracked tree, less the exported models that
``benchmarks/accelerator/aside.sh`` sets aside, plus ``.accel`` (wheels, room bank and pack,
21.6 MiB when last prepared), under ``prepare.sh``'s limit of 63. A shipped file that grows the
tree past it fails here, not on a lent machine that may not come again."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ASIDE = REPO / "benchmarks" / "accelerator" / "aside.sh"
ACCEL_MIB = 4.7 + 5.5 + 11.4  # wheels, room bank, pack (benchmarks/accelerator/README.md)
LIMIT_MIB = 63


def _lines(*cmd: str) -> list[str]:
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def test_the_tree_less_the_exported_models_leaves_room_for_the_pack():
    tracked = _lines("git", "ls-files")
    aside = _lines("bash", str(ASIDE), "list")
    assert aside and set(aside) <= set(tracked)
    assert all(p.endswith((".tflite", ".onnx")) for p in aside)  # never the jobs' weights
    size = sum((REPO / p).stat().st_size for p in tracked if (REPO / p).is_file())
    gone = sum((REPO / p).stat().st_size for p in aside)
    travels = (size - gone) / 2**20 + ACCEL_MIB
    assert travels <= LIMIT_MIB, f"{travels:.1f} MiB would travel"


def test_aside_refuses_what_it_does_not_know():
    done = subprocess.run(["bash", str(ASIDE), "sideways"], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "usage" in done.stderr
