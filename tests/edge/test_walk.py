"""The one folder walk (edge.walk.walk), which `tag` streams and `predict` expands folders with."""
import os
from pathlib import Path

import pytest

from edge_genre.edge.walk import walk
from edge_genre.edge.cli import audio_files

needs_links = pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_walk_order_is_the_order_of_sorted_paths(tmp_path):
    """Depth first with names sorted in each folder is the order predict used to sort its
    whole list in (pathlib's, part by part): a folder's files come before a longer name that
    it is a prefix of."""
    lib = tmp_path / "lib"
    _touch(lib, "a/z.wav", "a.wav", "a-b.wav", "a b/y.wav", "B.wav", "b/x.mp3", "b/a/q.ogg",
           "\u00e9.wav", "10.wav", "9.wav")
    walked = list(walk([str(lib)]))
    assert walked == [str(p) for p in sorted(Path(p) for p in walked)]
    assert [os.path.relpath(p, lib) for p in walked] == [
        "10.wav", "9.wav", "B.wav", "a/z.wav", "a b/y.wav", "a-b.wav", "a.wav", "b/a/q.ogg",
        "b/x.mp3", "\u00e9.wav"]


@needs_links
def test_walk_takes_file_links_and_broken_links_not_folder_links_or_hidden(tmp_path):
    lib, elsewhere = tmp_path / "lib", tmp_path / "elsewhere"
    _touch(lib, "real.wav", ".hidden.wav", "._real.wav", ".folder/x.wav", "notes.txt")
    _touch(elsewhere, "o.wav")
    (lib / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (lib / "loop.wav").symlink_to(lib / "loop.wav")  # ELOOP: listed, the reader says why
    (lib / "to-file.wav").symlink_to(elsewhere / "o.wav")
    (lib / "to-folder").symlink_to(elsewhere, target_is_directory=True)
    (lib / "to-folder.wav").symlink_to(elsewhere, target_is_directory=True)
    os.mkfifo(lib / "pipe.wav")
    names = [os.path.relpath(p, lib) for p in walk([str(lib)])]
    assert names == ["dangling.wav", "loop.wav", "real.wav", "to-file.wav"]
    # A folder given through a link is walked; a hidden file given by name is taken.
    assert list(walk([str(lib / "to-folder"), str(lib / ".hidden.wav")])) == [
        str(lib / "to-folder" / "o.wav"), str(lib / ".hidden.wav")]


def test_predict_expands_folders_through_the_walk_with_problems_in_place(tmp_path):
    lib, empty = tmp_path / "lib", tmp_path / "empty"
    _touch(lib, "b.wav", "a/1.flac", ".hidden/x.wav", ".h.wav")
    empty.mkdir()
    _touch(empty, "notes.txt")
    given = [str(tmp_path / "missing.wav"), str(lib) + "/", str(empty), str(lib / ".h.wav")]
    got = audio_files(given)
    assert iter(got) is got  # streamed: predict starts before the walk ends
    assert list(got) == [
        (str(tmp_path / "missing.wav"), "no such file or folder"),
        (str(lib / "a" / "1.flac"), None), (str(lib / "b.wav"), None),  # tidied: no "//"
        (str(empty), "folder holds no audio files"),
        (str(lib / ".h.wav"), None),  # named: taken as it is
    ]
