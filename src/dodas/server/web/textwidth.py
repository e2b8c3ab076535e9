"""How wide a line of text is drawn, without a browser: the graph's boxes are
drawn on the server (graph.py) and their text must fit them in whatever font
the browser picks for `system-ui, sans-serif`.

The advance widths are DejaVu Sans's (Book and Bold, from the fonts' own
tables, in hundredths of an em, for ASCII and the three other characters the
picture uses: · × …): the font Debian's browsers fall back to, and among the
widest sans-serif fonts (Verdana's proportions), so a text that fits by these
widths fits in narrower fonts too. A character not in the table counts a
whole em.
"""

from __future__ import annotations

_BOOK = (32, 41, 46, 84, 64, 96, 78, 28, 40, 40, 50, 84, 32, 37, 32, 34, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 34,
         34, 84, 84, 84, 54, 100, 69, 69, 70, 78, 64, 58, 78, 76, 30, 30, 66, 56, 87, 75, 79, 61, 79, 70, 64, 62, 74,
         69, 99, 69, 62, 69, 40, 34, 40, 84, 50, 50, 62, 64, 55, 64, 62, 36, 64, 64, 28, 28, 58, 28, 98, 64, 62, 64,
         64, 42, 53, 40, 64, 60, 82, 60, 60, 53, 64, 34, 64, 84)
_BOLD = (35, 46, 53, 84, 70, 101, 88, 31, 46, 46, 53, 84, 38, 42, 38, 37, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 40,
         40, 84, 84, 84, 59, 100, 78, 77, 74, 84, 69, 69, 83, 84, 38, 38, 78, 64, 100, 84, 86, 74, 86, 78, 73, 69, 82,
         78, 111, 78, 73, 73, 46, 37, 46, 84, 50, 50, 68, 72, 60, 72, 68, 44, 72, 72, 35, 35, 67, 35, 105, 72, 69, 72,
         72, 50, 60, 48, 72, 66, 93, 65, 66, 59, 72, 37, 72, 84)
_OTHER = {"·": (32, 38), "×": (84, 84), "…": (100, 100)}


def width(text: str, size_px: float, bold: bool = False) -> float:
    """The width in pixels of `text` drawn at `size_px`."""
    table = _BOLD if bold else _BOOK
    total = 0
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            total += table[code - 32]
        else:
            total += _OTHER.get(ch, (100, 100))[1 if bold else 0]
    return total * size_px / 100


def fit(text: str, size_px: float, room_px: float, bold: bool = False) -> str:
    """`text`, or as much of it as fits in `room_px` followed by "…"."""
    if width(text, size_px, bold) <= room_px:
        return text
    while text and width(text + "…", size_px, bold) > room_px:
        text = text[:-1]
    return text + "…"
