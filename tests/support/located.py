"""dodas's located errors (`FILE:LINE:COL: message`, exit code 1, no traceback), read
back by the tests that check where a bad template or input is reported."""

from __future__ import annotations

import re
from pathlib import Path

#: one located error line
LOC = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def located(code: int, out: str, err: str, file: str | None = None) -> list[tuple[str, int, int, str]]:
    """Every line of stderr as (file, line, col, message); exit code 1, no traceback."""
    assert code == 1, (code, out, err)
    assert "Traceback" not in out + err and "internal error" not in err, err
    found = []
    for ln in err.strip().splitlines():
        if ": warning: " in ln:
            continue
        m = LOC.match(ln)
        assert m, ln
        if file is not None:
            assert m["file"] == str(file), ln
        found.append((m["file"], int(m["line"]), int(m["col"]), m["msg"]))
    assert found, err
    return found


def one_error(r, path: Path) -> tuple[int, int, str]:
    """(line, col, message) of the one error of an in-process run (`cli` fixture) on `path`."""
    assert r.code == 1, (r.code, r.out, r.err)
    assert "Traceback" not in r.err + r.out
    lines = [ln for ln in r.err.strip().splitlines() if ln]
    assert len(lines) == 1, r.err
    m = LOC.match(lines[0])
    assert m and m["file"] == str(path), lines[0]
    return int(m["line"]), int(m["col"]), m["msg"]
