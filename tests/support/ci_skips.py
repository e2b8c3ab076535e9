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

#: the user property by which a skip turned into a failure in CI is still counted as a skip
_CI_SKIP = "skipped in CI"


def in_ci() -> bool:
    """CI runs every test: `CI` set to anything but empty, 0 or false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


class SkipRule:
    """The rule for one pytest session (one per config: an inner pytester run counts its own)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        #: (node id, reason) of every skip, tests and collected files alike
        self.skips: list[tuple[str, str]] = []
        #: the files skipped while collected (they fail the session in CI)
        self.file_skips: list[tuple[str, str]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A test that skipped: in CI, a failure (where the test ran, an xdist worker or not)."""
        outcome = yield
        report = outcome.get_result()
        if report.skipped and not hasattr(report, "wasxfail") and in_ci():
            reason = _reason(report)
            report.user_properties.append((_CI_SKIP, reason))  # travels with the report to xdist's controller
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, which must run every test: {reason}"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Counted where the reports are gathered (the one process, or xdist's controller)."""
        ci_skip = [reason for name, reason in report.user_properties if name == _CI_SKIP]
        if ci_skip:
            self.skips.append((report.nodeid, ci_skip[0]))
        elif report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append((report.nodeid, _reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A file (or class) that skipped while collected: counted, and in CI it fails the session."""
        if report.skipped:
            self.skips.append((report.nodeid, _reason(report)))
            self.file_skips.append((report.nodeid, _reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if in_ci() and self.file_skips and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """One line: how many skips and why; in CI, the skipped files as failures."""
        if hasattr(self.config, "workerinput"):  # an xdist worker: its controller says it for all
            return
        if in_ci():
            for nodeid, reason in self.file_skips:
                terminalreporter.write_line(f"FAILED {nodeid}: skipped in CI, which must run every test: {reason}",
                                            red=True)
        line = f"skips: {len(self.skips)}"
        if self.skips:
            line += (" (" + "; ".join(f"{n}: {r}" for n, r in self.skips[:5])
                     + ("; ..." if len(self.skips) > 5 else "") + ")")
        terminalreporter.write_line(line)
        report = os.environ.get("DODAS_SKIP_REPORT")
        if report:
            Path(report).write_text(line + "\n")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipRule(config), "dodas-skip-rule")
