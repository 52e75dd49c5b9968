"""Shared fixtures. Real data comes from ../shared (never copied into the project); set
EDGE_GENRE_SHARED to point elsewhere."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_GENRE_SHARED", REPO.parent / "shared")).resolve()
GTZAN_MINI = SHARED / "data" / "gtzan-mini" / "genres"
GTZAN_SPLITS = SHARED / "data" / "gtzan-splits"
YAMNET_TFLITE = SHARED / "peers" / "yamnet" / "yamnet.tflite"


def gtzan_file(track_id: str) -> Path:
    """Path of a GTZAN excerpt by id, e.g. 'jazz.00002' (.wav or .au)."""
    genre = track_id.split(".")[0]
    for ext in (".wav", ".au"):
        path = GTZAN_MINI / genre / f"{track_id}{ext}"
        if path.exists():
            return path
    raise FileNotFoundError(track_id)


@pytest.fixture(scope="session")
def gtzan_root() -> Path:
    if not GTZAN_MINI.is_dir():
        pytest.fail(f"real GTZAN excerpts not found at {GTZAN_MINI} (set EDGE_GENRE_SHARED)")
    return GTZAN_MINI


@pytest.fixture(scope="session")
def artist_index_path() -> Path:
    return GTZAN_SPLITS / "artist_title_index.txt"
