"""The Layout page (docs/layout.md, linked from the README) names every module of every package,
and only modules that exist."""
from __future__ import annotations

import re

from tests.conftest import REPO
from tests.test_import_cycles import PACKAGES

HEADER = re.compile(r"^(\w+)/ -> edge_genre(?:\.(\w+))?\s")
ENTRY = re.compile(r"^  (\w+)(/?)\s")


LAYOUT = REPO / "docs" / "layout.md"


def layout_block(page: str) -> str:
    """The first fenced block after the page's ``# Layout`` heading."""
    section = page.split("# Layout\n", 1)[1]
    return section.split("```", 2)[1]


def listed(block: str) -> dict[str, tuple[set[str], set[str]]]:
    """package folder -> (modules, folders) the block lists under it."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    current = None
    for line in block.splitlines():
        head = HEADER.match(line)
        if head:
            current = head.group(1)
            out[current] = (set(), set())
            continue
        entry = ENTRY.match(line)
        if entry and current is not None:
            out[current][1 if entry.group(2) else 0].add(entry.group(1))
        elif line and not line.startswith(" "):
            current = None  # a line such as tests/ ends the package above it
    return out


def test_layout_lists_every_module_of_every_package():
    found = listed(layout_block(LAYOUT.read_text(encoding="utf-8")))
    assert set(found) == set(PACKAGES)
    for package, (modules, folders) in found.items():
        on_disk = {p.stem for p in (REPO / package).glob("*.py") if p.stem != "__init__"}
        assert modules == on_disk, (f"{package}/: docs/layout.md lists {sorted(modules - on_disk)} "
                                    f"that do not exist and lacks {sorted(on_disk - modules)}")
        for folder in folders:
            assert (REPO / package / folder).is_dir(), f"{package}/{folder}/ does not exist"


def test_the_check_sees_a_missing_and_an_invented_module():
    block = ("edge/ -> edge_genre.edge   runtime\n  audio   decoding\n  nonsense   not there\n"
             "tests/   the tests\n  conftest   fixtures\n")
    modules, _ = listed(block)["edge"]
    on_disk = {p.stem for p in (REPO / "edge").glob("*.py") if p.stem != "__init__"}
    assert "nonsense" in modules - on_disk and "windowing" in on_disk - modules
    assert "tests" not in listed(block)
