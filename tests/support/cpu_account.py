"""Where the suite's CPU goes, per test file, measured by the kernel (DODAS_TEST_CPU=FILE).

A test's own process is a small part of its cost: the dodas commands, Ansible runs, JVMs and
daemons it starts are the rest, and many of them leave the pytest process's tree (daemons
re-parent to init), so `resource.getrusage` cannot see them. A cgroup can: every process
forked inside it stays in it, and its CPU is counted there even after it exits. Before a test
file's first test, the worker moves itself into a cgroup of that file's own (cgroup v1
`cpuacct`, as on these machines; nothing happens where it is missing); every process the
file's tests start is then counted there, whatever the machine's load and however many
workers run. Session fixtures started by a file's tests (the OpenStack control plane, the
PostgreSQL server) are counted in that first file.

At the end, FILE gets one JSON line per test file: its CPU seconds, and the processes still in
its cgroup other than pytest's own (started by that file and never stopped: a leak).
`bench/bench_suite.py --cpu` prints the table docs/BENCHMARKS.md shows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import zygote

ROOT = Path("/sys/fs/cgroup/cpuacct")


class _Accounts:
    def __init__(self, report: Path) -> None:
        self.report = report
        self.base = ROOT / f"dodas-tests-{os.getpid()}"
        self.current: str | None = None
        self.groups: dict[str, Path] = {}

    def enter(self, module: str) -> None:
        if module == self.current:
            return
        group = self.base / module.replace("/", "_")
        group.mkdir(parents=True, exist_ok=True)
        (group / "cgroup.procs").write_text(str(os.getpid()))
        self.groups[module] = group
        self.current = module

    def finish(self) -> None:
        if not self.groups:  # xdist's controller runs no test
            return
        (ROOT / "cgroup.procs").write_text(str(os.getpid()))  # out of the files' groups
        lines = []
        for module, group in self.groups.items():
            left = [int(p) for p in (group / "cgroup.procs").read_text().split()]
            cpu = int((group / "cpuacct.usage").read_text()) / 1e9
            lines.append(json.dumps({"file": module, "cpu_s": round(cpu, 2), "left": _names(left)}))
        with self.report.open("a") as out:
            out.write("".join(line + "\n" for line in lines))
        for group in [*self.groups.values(), self.base]:
            try:  # a group some process still lives in stays, as the report says
                group.rmdir()
            except OSError:
                pass


def _names(pids: list[int]) -> list[str]:
    names = []
    for pid in pids:
        try:
            names.append(f"{pid} {Path(f'/proc/{pid}/comm').read_text().strip()}")
        except OSError:
            continue
    return names


def _usable() -> bool:
    return (ROOT / "cgroup.procs").exists() and os.access(ROOT, os.W_OK)


def pytest_configure(config: pytest.Config) -> None:
    report = os.environ.get("DODAS_TEST_CPU")
    if report and _usable():
        config.stash[_KEY] = _Accounts(Path(report))


_KEY = pytest.StashKey[_Accounts]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    accounts = item.config.stash.get(_KEY, None)
    if accounts is not None:
        accounts.enter(item.nodeid.split("::")[0])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """At the session's end, after its fixtures are torn down (the runner's own
    sessionfinish) and before an xdist worker reports it finished (its controller may end
    the worker's process soon after: pytest_unconfigure is too late there)."""
    accounts = session.config.stash.get(_KEY, None)
    if accounts is not None:
        zygote.stop()  # the worker's warm interpreter is not something a test file left
        accounts.finish()
