"""The README and the guide under docs/ link to each other with relative links;
a page moved or a heading renamed breaks them silently on GitHub. Every relative
link in README.md and docs/**/*.md must name a file that exists, and a
`#fragment` into a Markdown file must name one of its headings (GitHub's anchor
rules). Pure file reading: no process, no network."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

#: [text](target) and ![alt](target), target up to the first space or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with their numbers, inline code removed."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, re.sub(r"`[^`]*`", "", line)))
    return out


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped,
    spaces to hyphens, a repeated slug numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path) -> list[tuple[int, str]]:
    return [(n, m.group(1)) for n, line in _prose(page.read_text(encoding="utf-8"))
            for m in LINK.finditer(line)]


def broken(page: Path) -> list[str]:
    """`page:LINE: target: why` for each relative link of the page that does not resolve."""
    out = []
    for n, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto: ...: not this test's business
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}:{n}: {target}"
        if not dest.exists():
            out.append(f"{where}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            out.append(f"{where}: no heading with anchor #{fragment} in {dest.relative_to(ROOT)}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken(page) == []


def test_pages_are_found() -> None:
    """The parametrisation above saw the README and the guide, not an empty list."""
    names = {str(p.relative_to(ROOT)) for p in PAGES}
    assert "README.md" in names and "docs/guide/cli.md" in names


def test_the_check_catches_a_broken_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing file, a missing heading and a link inside code (ignored) on a page of our own."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "there.md").write_text("# A `code` heading, twice\n\n## A code heading twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#a-code-heading-twice) [ok2](there.md#a-code-heading-twice-1)\n"
                    "[gone](missing.md) ![img](pic.png) [web](https://example.org/x.md)\n"
                    "[bad anchor](there.md#nope) [self](#page)\n"
                    "`[in code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n# Page\n", encoding="utf-8")
    assert broken(page) == ["page.md:2: missing.md: no such file", "page.md:2: pic.png: no such file",
                            "page.md:3: there.md#nope: no heading with anchor #nope in there.md"]
