"""How the suite is shared out among parallel workers (pytest-xdist, `--dist loadgroup`).

Most of the suite's time is spent waiting on the processes it starts (dodas
commands, Ansible, Spark's JVMs, servers), so `make.py test` runs it on more
workers than the machine has cores. What one worker must run together is a unit:

- a module some of whose tests use a module-scoped fixture (a deployment several
  tests read, a server) is one unit, in its written order, so that the fixture is
  made once and a test that reads what an earlier one did still finds it; a
  module can also ask for this with `XDIST_TOGETHER = True`;
- any other test is a unit of its own, so that the long independent tests of one
  module (the kill -9 tests, the linter's shards) run side by side.

Units go out in the order of collection: heavy and light ones stay mixed (starting
every heavy unit at once, longest first, was tried: the Spark deployments then
competed for the two cores and the run took longer). Without xdist (`-n 0`, or
pytest run directly) the marks change nothing.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

#: fixtures of these scopes are made once per module (or class): their module stays on one worker
SHARED = {"module", "package", "class"}


def _shares_a_fixture(item: pytest.Item) -> bool:
    defs = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        found = defs.name2fixturedefs.get(name) if defs else None
        if found and found[-1].scope in SHARED:
            return True
    return False


def units_of(items: list[pytest.Item]) -> dict[str, list[pytest.Item]]:
    """The units, in collection order, each with its tests in their order."""
    together = {item.nodeid.split("::", 1)[0] for item in items
                if getattr(item.module, "XDIST_TOGETHER", False) or _shares_a_fixture(item)}
    units: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        units[module if module in together else item.nodeid].append(item)
    return units


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test marked with its unit, for xdist's `loadgroup` (this runs before
    xdist's own hook reads the marks); a module's tests kept together."""
    units = units_of(items)
    for unit, its in units.items():
        for item in its:
            item.add_marker(pytest.mark.xdist_group(unit))
    items[:] = [item for its in units.values() for item in its]
