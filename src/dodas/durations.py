"""Durations as people type them: "30s", "5m", "1h30m", "2d", or plain seconds ("90", "1.5").

Used by `dodas logs --since` and `--lock-timeout`. A malformed one is a usage
error (exit 2) naming the option and what a duration looks like.
"""

from __future__ import annotations

import re

from dodas.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
HOW = 'a number of seconds ("90"), or numbers with units s, m, h, d ("30s", "5m", "1h30m", "2d")'


class DurationError(UsageError):
    """A value that is not a duration: wrong command-line usage (exit 2)."""


def parse_duration(text: str, option: str = "duration") -> float:
    """Seconds in `text`; DurationError naming `option` when it is not a duration."""
    raw = (text or "").strip().lower()
    if _NUMBER.fullmatch(raw):
        return float(raw)
    pos, total, seen = 0, 0.0, []
    for m in _PART.finditer(raw):
        if m.start() != pos or m.group(2) in seen:
            break
        seen.append(m.group(2))
        total += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    else:
        if raw and pos == len(raw) and seen == sorted(seen, key=lambda u: -UNITS[u]):
            return total
    raise DurationError(f'{option}: "{text}" is not a duration: use {HOW}')


def format_duration(seconds: float) -> str:
    """Seconds as the shortest duration text that `parse_duration` reads back ("1h30m", "2.5s")."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    out, left = "", int(seconds)
    for unit in ("d", "h", "m", "s"):
        n, left = divmod(left, UNITS[unit])
        if n:
            out += f"{n}{unit}"
    return out
