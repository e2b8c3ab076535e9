"""How the suite is shared out among parallel workers (pytest-xdist, `--dist loadgroup`).

Most of the suite's time is spent waiting on the processes it starts (dodas
commands, Ansible, Spark's JVMs, servers), so `make.py test` runs it on more
workers than the machine has cores. Two rules make that both fast and safe:

- **A unit of work** is what one worker must run together. A module some of
  whose tests share a module-scoped fixture (a deployment several tests read, a
  server) is one unit, in its written order, so that fixture is made once and
  tests that read what an earlier one did still find it; any other test is a
  unit of its own, so the long independent tests of one module run side by side.
  A module can ask for its tests to stay together with `XDIST_TOGETHER = True`.
- **The longest units start first**: a long unit started last is the tail the
  whole run waits for. The durations come from `tests/support/durations.json`
  (seconds per test, as measured on a full run: `DODAS_RECORD_DURATIONS=FILE`
  writes them); a test not listed there counts as a few seconds.

Without xdist (`-n` not given) nothing changes but the order.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parent / "durations.json"
#: a unit the durations file does not know (a new test): most tests take a few seconds
UNKNOWN = 3.0
#: fixtures of these scopes are made once per module: their module stays on one worker
SHARED = {"module", "package", "class"}


def _shares_a_fixture(item: pytest.Item) -> bool:
    defs = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        found = defs.name2fixturedefs.get(name) if defs else None
        if found and found[-1].scope in SHARED:
            return True
    return False


def units_of(items: list[pytest.Item]) -> dict[str, list[pytest.Item]]:
    """The units, in collection order: a module is one unit when any of its tests
    uses a module-scoped fixture (its other tests may read what those made) or it
    says `XDIST_TOGETHER = True`; otherwise each test is a unit of its own."""
    together = {item.nodeid.split("::", 1)[0] for item in items
                if getattr(item.module, "XDIST_TOGETHER", False) or _shares_a_fixture(item)}
    units: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        units[module if module in together else item.nodeid].append(item)
    return units


def _durations() -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest units first, each unit's tests in their written order, and each
    test marked with its unit for xdist's `loadgroup` (this runs before xdist's
    own hook reads the marks)."""
    known = _durations()
    units = units_of(items)
    for unit, its in units.items():
        for item in its:
            item.add_marker(pytest.mark.xdist_group(unit))
    weight = {u: sum(known.get(_plain(i.nodeid), UNKNOWN) for i in its) for u, its in units.items()}
    order = sorted(units, key=lambda u: -weight[u])  # a stable sort: ties keep their order
    items[:] = [item for u in order for item in units[u]]


def _plain(nodeid: str) -> str:
    """A node id without the `@unit` xdist's loadgroup appends on the workers."""
    head, at, unit = nodeid.rpartition("@")
    return head if at and unit in (head, head.split("::", 1)[0]) else nodeid


# -- recording the durations (DODAS_RECORD_DURATIONS=FILE) ----------------------------------
_spent: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Seconds per test, summed over setup, call and teardown (in the controller,
    where every worker's reports arrive)."""
    if os.environ.get("DODAS_RECORD_DURATIONS"):
        _spent[_plain(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("DODAS_RECORD_DURATIONS")
    if target and _spent and not hasattr(session.config, "workerinput"):
        Path(target).write_text(json.dumps({u: round(s, 1) for u, s in sorted(_spent.items())}, indent=1) + "\n")
