"""No skip escapes CI. An end-to-end test that skips because Java, sshd, PostgreSQL,
a browser or root is missing would let the suite pass untested, so when `CI` is set
(.ci/run sets it) every skip is a failure, and every run ends with one line that
counts the skips and says why (make.py repeats it after the run).

Skips happen in two places and both are counted: while a test runs (a fixture or the
test calls pytest.skip, a skip mark) and while a file is collected (a module-level
`pytest.importorskip` or `pytest.skip(allow_module_level=True)`, which skips the whole
file before any test of it exists). A skipped test becomes a failed one; a skipped
file cannot, having no tests, so it fails the session instead, named in the summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: (node id, reason) of every skip of the session, tests and collected files alike
_SKIPS = pytest.StashKey[list[tuple[str, str]]]()
#: the files skipped while collected (they fail the session in CI)
_FILE_SKIPS = pytest.StashKey[list[tuple[str, str]]]()


def in_ci() -> bool:
    """CI runs every test: `CI` set to anything but empty, 0 or false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SKIPS] = []
    config.stash[_FILE_SKIPS] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A test that skipped: counted, and in CI turned into a failure."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    item.config.stash[_SKIPS].append((item.nodeid, reason))
    if in_ci():
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A file (or class) that skipped while collected: counted, and remembered to fail the session in CI."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        skip = (collector.nodeid, _reason(report))
        collector.config.stash[_SKIPS].append(skip)
        collector.config.stash[_FILE_SKIPS].append(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if in_ci() and session.config.stash[_FILE_SKIPS] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """One line: how many skips and why; in CI, the skipped files as failures."""
    if in_ci():
        for nodeid, reason in config.stash[_FILE_SKIPS]:
            terminalreporter.write_line(f"FAILED {nodeid}: skipped in CI, which must run every test: {reason}",
                                        red=True)
    skips = config.stash[_SKIPS]
    line = f"skips: {len(skips)}"
    if skips:
        line += " (" + "; ".join(f"{n}: {r}" for n, r in skips[:5]) + ("; ..." if len(skips) > 5 else "") + ")"
    terminalreporter.write_line(line)
    report = os.environ.get("DODAS_SKIP_REPORT")
    if report:
        Path(report).write_text(line + "\n")
