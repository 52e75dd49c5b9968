"""Dataset discovery on the real GTZAN excerpts and on user-made folder-per-genre datasets."""
from __future__ import annotations

import shutil

import pytest

from edge_genre.errors import DataError
from edge_genre.train.data import discover
from tests.conftest import GTZAN_MINI, gtzan_file


def test_gtzan_mini(gtzan_root, artist_index_path):
    ds = discover(gtzan_root)
    assert ds.labels == ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal",
                         "pop", "reggae", "rock")
    assert len(ds) == 161 and sum(ds.counts().values()) == 161
    assert ds.artist_index == artist_index_path  # found beside the data
    assert sum(1 for t in ds.tracks if not t.artist) <= 1  # pop.00010 is not in Sturm's index
    assert len({t.artist for t in ds.tracks if t.artist}) == 64
    assert {t.path.suffix for t in ds.tracks} == {".wav", ".au"}


def test_gtzan_parent_layout_and_no_artists(gtzan_root):
    ds = discover(gtzan_root.parent, artist_index=None)  # <root>/genres/<genre>/
    assert len(ds) == 161 and ds.artist_index is None
    assert all(t.group.startswith("track:") for t in ds.tracks)


def test_user_dataset_with_odd_files(tmp_path):
    for genre, ids in {"b-side": ["blues.00000", "blues.00001"], "a-side": ["rock.00000"]}.items():
        (tmp_path / genre).mkdir()
        for i in ids:
            shutil.copy(gtzan_file(i), tmp_path / genre / f"{i}.wav")
    (tmp_path / "a-side" / "notes.txt").write_text("not audio")
    (tmp_path / "empty-genre").mkdir()
    (tmp_path / "jazz").mkdir()
    (tmp_path / "jazz" / "jazz.00054.wav").write_bytes(b"broken")  # known-corrupt GTZAN file
    ds = discover(tmp_path)
    assert ds.labels == ("a-side", "b-side")  # sorted, empty/only-corrupt folders ignored
    assert [t.label for t in ds.tracks] == [0, 1, 1]
    assert ds.artist_index is None


def test_known_corrupt_file_is_skipped_with_a_reason(tmp_path):
    for genre in ("jazz", "rock"):
        (tmp_path / genre).mkdir()
        shutil.copy(gtzan_file(f"{genre}.00002"), tmp_path / genre)
    (tmp_path / "jazz" / "jazz.00054.wav").write_bytes(b"broken")
    ds = discover(tmp_path)
    assert len(ds) == 2 and len(ds.skipped) == 1 and "corrupt" in ds.skipped[0][1]


@pytest.mark.parametrize("layout", ["missing", "one-genre"])
def test_bad_dataset_folders(tmp_path, layout):
    if layout == "one-genre":
        (tmp_path / "rock").mkdir()
        shutil.copy(gtzan_file("rock.00000"), tmp_path / "rock")
    with pytest.raises(DataError):
        discover(tmp_path if layout == "one-genre" else tmp_path / "nope")


def test_fingerprint_changes_with_content(tmp_path):
    for genre in ("jazz", "rock"):
        (tmp_path / genre).mkdir()
        shutil.copy(gtzan_file(f"{genre}.00002"), tmp_path / genre)
    before = discover(tmp_path).fingerprint()
    assert discover(tmp_path).fingerprint() == before
    f = next((tmp_path / "rock").iterdir())
    f.write_bytes(f.read_bytes()[:-2] + b"\x00\x01")
    assert discover(tmp_path).fingerprint() != before
