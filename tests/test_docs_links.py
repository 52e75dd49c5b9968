"""Every relative link in README.md and docs/*.md points to a file that exists, and to a heading
that exists where it names one (``page.md#heading``), so the docs' links cannot rot."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

PAGES = (REPO / "README.md", REPO / "DEVELOPERS.md", REPO / "benchmarks" / "results" / "README.md",
         *sorted((REPO / "docs").glob("*.md")))

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks."""
    out, fenced = [], None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and (fenced is None or fence.group(1) == fenced):
            fenced = None if fenced else fence.group(1)
            continue
        if fenced is None:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped, spaces
    to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link reads as its text
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a link may name on a page: its headings' slugs (GitHub numbers repeats)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        found.update(HTML_ID.findall(line))
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's links and link reference definitions, outside code."""
    out = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        reference = REFERENCE.match(line)
        if reference:
            out.append(reference.group(1))
            continue
        out.extend(LINK.findall(INLINE_CODE.sub("", line)))
    return out


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` whose file or heading does not exist, as 'target: why'."""
    broken = []
    for target in links(page):
        if not target or SCHEME.match(target):
            continue  # a web address: not checked here
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    return broken


def test_every_relative_link_resolves():
    assert (REPO / "docs").is_dir() and len(PAGES) > 4
    found = {str(p.relative_to(REPO)): broken_links(p) for p in PAGES}
    assert not any(found.values()), {page: b for page, b in found.items() if b}


def test_the_readme_links_every_docs_page():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(REPO / "README.md")}
    missing = [p.name for p in (REPO / "docs").glob("*.md") if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_check_sees_a_missing_file_and_a_missing_heading(tmp_path):
    tmp_path = tmp_path.resolve()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "speed.md").write_text(
        "# Speed and size, measured in one run\n\n## Raspberry Pi, estimated, not measured\n"
        "## Raspberry Pi, estimated, not measured\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n"
        "[ok](docs/speed.md) [ok](docs/speed.md#raspberry-pi-estimated-not-measured)\n"
        "[ok, the repeat](docs/speed.md#raspberry-pi-estimated-not-measured-1) [ok](#title)\n"
        "[web](https://example.org/x.md) `[in code](nowhere.md)`\n"
        "```\n[in a block](nowhere.md)\n```\n"
        "[gone](docs/sped.md) and [no heading](docs/speed.md#raspberry-pi-measured)\n"
        "![image](docs/plot.png) [here, no heading](#nothing)\n"
        "[ref]: docs/missing.md\n")
    assert broken_links(page) == [
        f"docs/sped.md: no such file {tmp_path / 'docs' / 'sped.md'}",
        "docs/speed.md#raspberry-pi-measured: no heading #raspberry-pi-measured in speed.md",
        f"docs/plot.png: no such file {tmp_path / 'docs' / 'plot.png'}",
        "#nothing: no heading #nothing in README.md",
        f"docs/missing.md: no such file {tmp_path / 'docs' / 'missing.md'}",
    ]


def test_slugs_follow_github():
    assert slug("On a phone: one file for MediaPipe") == "on-a-phone-one-file-for-mediapipe"
    assert slug("The `runtime` as a library") == "the-runtime-as-a-library"
    assert slug("Speed and size, measured in one run") == "speed-and-size-measured-in-one-run"
