"""`edge-genre tag --write-tags`: the genre into MP3 (ID3 TCON), FLAC and Ogg Vorbis (GENRE)
and MP4 (©gen) files, round-tripped with mutagen; --dry-run changes nothing; an existing genre
is kept unless --overwrite; the audio is never touched (decoded samples identical, and the
bytes outside the tag region identical where the format allows that check); the rows record
the files as they are after tagging, so the next run classifies nothing again."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from edge_genre.cli import main
from edge_genre.edge.tag_output import read_rows

from tests.conftest import gtzan_file

mutagen = pytest.importorskip("mutagen", reason="--write-tags needs mutagen (the 'tags' extra)")
sf = pytest.importorskip("soundfile", reason="the test makes mp3/flac/ogg copies with soundfile")

from edge_genre.edge import tag_files as tags  # noqa: E402

FORMATS = {"mp3": dict(format="MP3", subtype="MPEG_LAYER_III"),
           "ogg": dict(format="OGG", subtype="VORBIS"),
           "flac": dict(format="FLAC", subtype="PCM_16")}


def make_copies(folder: Path) -> dict[str, Path]:
    """8 s of a real excerpt as mp3, ogg (Vorbis) and flac; mp3 only where libsndfile writes it."""
    folder.mkdir()
    y, rate = sf.read(str(gtzan_file("metal.00002")), frames=22050 * 8, dtype="float32")
    out = {}
    for ext, kw in FORMATS.items():
        if kw["format"] not in sf.available_formats():
            continue
        path = folder / f"metal.{ext}"
        try:
            sf.write(str(path), y, rate, **kw)
        except Exception:  # noqa: BLE001 - libsndfile < 1.1 has no MP3 writer
            path.unlink(missing_ok=True)
            continue
        out[ext] = path
    if "mp3" not in out:
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write MP3 (needs >= 1.1)")
    return out


def samples(path: Path) -> np.ndarray:
    y, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return y


def id3v2_size(data: bytes) -> int:
    """Bytes of an ID3v2 tag at the start (0 if none)."""
    if data[:3] != b"ID3":
        return 0
    size = 0
    for b in data[6:10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def flac_frames(data: bytes) -> bytes:
    """A FLAC file's audio frames: everything after its metadata blocks."""
    assert data[:4] == b"fLaC"
    pos = 4
    while True:
        header = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        pos += 4 + length
        if header & 0x80:  # the last metadata block
            return data[pos:]


def test_write_tags_round_trip_with_audio_unchanged(tmp_path, capsys):
    files = make_copies(tmp_path / "lib")
    # The FLAC copy already has a genre: it is kept unless --overwrite.
    f = mutagen.File(files["flac"])
    f["genre"] = ["Progressive Polka"]
    f.save()
    before = {ext: p.read_bytes() for ext, p in files.items()}
    audio = {ext: samples(p) for ext, p in files.items()}
    out = tmp_path / "rows.csv"

    # --dry-run: what would change, and nothing written into the files
    assert main(["tag", str(tmp_path / "lib"), "--out", str(out), "--write-tags", "--dry-run",
                 "--workers", "2"]) == 0
    text = capsys.readouterr()
    assert {ext: p.read_bytes() for ext, p in files.items()} == before
    rows = {Path(r["path"]).suffix[1:]: r for r in read_rows(out)}
    assert set(rows) == set(files) and all(r["genre"] for r in rows.values())
    for ext in ("mp3", "ogg"):
        line = f"{files[ext].resolve()}: genre (none) -> {tags.tag_text(rows[ext]['genre'])}"
        assert line + " (dry run: not written)" in text.out
    assert "'Progressive Polka' kept" in text.out
    assert "would write 2, kept 1 existing" in text.err

    # --write-tags: mp3 and ogg get the genre, flac keeps its own
    assert main(["tag", str(tmp_path / "lib"), "--out", str(out), "--write-tags"]) == 0
    text = capsys.readouterr()
    assert "0 classified" in text.err  # the dry run's rows are reused, not recomputed
    assert "wrote 2, kept 1 existing" in text.err
    for ext in ("mp3", "ogg"):
        assert tags.read_genres(files[ext]) == [tags.tag_text(rows[ext]["genre"])]
    assert tags.read_genres(files["flac"]) == ["Progressive Polka"]
    assert mutagen.File(files["mp3"]).tags.getall("TCON")[0].text == \
        [tags.tag_text(rows["mp3"]["genre"])]
    assert mutagen.File(files["ogg"])["genre"] == [tags.tag_text(rows["ogg"]["genre"])]

    # --overwrite: flac too
    assert main(["tag", str(tmp_path / "lib"), "--out", str(out), "--write-tags",
                 "--overwrite"]) == 0
    capsys.readouterr()
    assert tags.read_genres(files["flac"]) == [tags.tag_text(rows["flac"]["genre"])]

    # The audio: decoded samples identical for every file ...
    for ext, p in files.items():
        assert np.array_equal(samples(p), audio[ext]), ext
    # ... and the bytes: the MP3 is the new ID3 tag in front of the old bytes; the FLAC's
    # audio frames are the same bytes.
    new_mp3 = files["mp3"].read_bytes()
    assert id3v2_size(before["mp3"]) == 0
    assert new_mp3[id3v2_size(new_mp3):] == before["mp3"]
    assert flac_frames(files["flac"].read_bytes()) == flac_frames(before["flac"])

    # The rows were updated to the tagged files' size and mtime: nothing to classify again,
    # one row per file.
    assert main(["tag", str(tmp_path / "lib"), "--out", str(out), "--write-tags"]) == 0
    err = capsys.readouterr().err
    assert "0 classified" in err and "3 already" in err and "wrote 0" in err
    after = read_rows(out)
    assert len(after) == 3
    for r in after:
        st = Path(r["path"]).stat()
        assert (r["size"], r["mtime"]) == (st.st_size, st.st_mtime)
        assert r["genre"] == rows[Path(r["path"]).suffix[1:]]["genre"]


def test_wav_files_are_left_alone(tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.wav").symlink_to(gtzan_file("jazz.00002"))
    target = gtzan_file("jazz.00002").read_bytes()
    assert main(["tag", str(lib), "--out", str(tmp_path / "rows.csv"), "--write-tags"]) == 0
    assert "1 file(s) of a type without genre tags (.wav) left alone" in capsys.readouterr().err
    assert gtzan_file("jazz.00002").read_bytes() == target
    assert (lib / "a.wav").is_symlink()


def _atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def test_mp4_genre_atom(tmp_path):
    """MP4 ©gen on a minimal .m4a (libsndfile cannot make or decode AAC, so no encoder is
    needed: the file is built atom by atom); the media data bytes are unchanged."""
    mvhd = _atom(b"mvhd", bytes(12) + struct.pack(">II", 1000, 5000) + bytes(80))
    mdhd = _atom(b"mdhd", bytes(12) + struct.pack(">II", 1000, 5000) + bytes(4))
    hdlr = _atom(b"hdlr", bytes(8) + b"soun" + bytes(13))
    media = bytes(range(256)) * 16
    data = (_atom(b"ftyp", b"M4A \0\0\0\0M4A mp42isom")
            + _atom(b"moov", mvhd + _atom(b"trak", _atom(b"mdia", mdhd + hdlr)))
            + _atom(b"mdat", media))
    path = tmp_path / "song.m4a"
    path.write_bytes(data)
    assert tags.plan(path, "hiphop").action == "write"
    tags.write_genre(path, tags.tag_text("hiphop"))
    assert tags.read_genres(path) == ["Hip-Hop"]
    assert mutagen.File(path).tags["\xa9gen"] == ["Hip-Hop"]
    new = path.read_bytes()
    assert _atom(b"mdat", media) in new
    assert tags.plan(path, "hiphop").action == "same"
    assert tags.plan(path, "jazz").action == "keep"
    assert tags.plan(path, "jazz", overwrite=True).action == "write"
    assert not list(tmp_path.glob(".*"))  # no temporary file left
