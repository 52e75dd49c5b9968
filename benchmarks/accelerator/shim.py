"""Make ``import edge_genre.*`` work from a bare checkout: a folder of links laid out as installed.

pyproject.toml maps the package names to top-level folders (``edge_genre.train`` is ``train/``,
see ``[tool.setuptools.package-dir]``). A machine that only runs a job (a lent accelerator: no
build backend is needed, nothing is installed) gets the same layout from symbolic links:

    python3 benchmarks/accelerator/shim.py /tmp/shim && export PYTHONPATH=/tmp/shim

Standard library only (tomllib: Python 3.11+). ``edge_genre.__file__`` resolves into the
checkout, so the shipped models are found where they are.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Package name -> folder, from pyproject.toml."""
    with open(root / "pyproject.toml", "rb") as f:
        dirs = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: root / folder for name, folder in dirs.items()}


def make(target: str | Path, root: Path = ROOT) -> Path:
    """Lay the links under ``target`` (made anew each time); returns the folder to put on
    PYTHONPATH."""
    target = Path(target)
    dirs = package_dirs(root)
    top = target / "edge_genre"
    top.mkdir(parents=True, exist_ok=True)
    for item in dirs.pop("edge_genre").iterdir():  # the top package's own files and models/
        link = top / item.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(item)
    for name, folder in dirs.items():  # edge_genre.train -> train/, ...
        link = target.joinpath(*name.split("."))
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(folder, target_is_directory=True)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python3 benchmarks/accelerator/shim.py TARGET_DIR", file=sys.stderr)
        raise SystemExit(2)
    print(make(sys.argv[1]))
