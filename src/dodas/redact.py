"""Keeping secrets out of everything dodas writes or prints.

Every secret dodas generates or reads (tokens, passwords, private keys) is
registered here as soon as it exists; events, error messages, and command output
pass through `redact`, which replaces any registered value. This is a second
line: the first is that secrets are never formatted into messages at all.
"""

from __future__ import annotations

import threading

MASK = "********"
_lock = threading.Lock()
_secrets: set[str] = set()


def register(*values: object) -> None:
    with _lock:
        for v in values:
            if isinstance(v, str) and len(v) >= 4:
                _secrets.add(v)


def redact(text: str) -> str:
    if not text or not _secrets:
        return text
    with _lock:
        for s in sorted(_secrets, key=len, reverse=True):
            if s in text:
                text = text.replace(s, MASK)
    return text
