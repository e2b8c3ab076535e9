"""The suite's own rules. In CI a skip is a failure, whether a test skipped while
running or a whole file skipped while collected, and every run ends with a line that
counts the skips (support/ci_skips.py, proved on inner pytest runs). What tests share
lives in tests/support/ or tests/conftest.py: no module imports a test module or
conftest (read from the source with `ast`, every import counts)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SKIPPING_FIXTURE = """
import pytest


@pytest.fixture
def needs():
    pytest.skip("the server is missing")


def test_end_to_end(needs):
    pass


def test_unit():
    pass
"""

#: a file skipped whole while collected, as a missing optional package would skip it
SKIPPED_FILE = """
import pytest

pytest.importorskip("dodas_no_such_package", reason="the extra is not installed")


def test_needs_the_extra():
    pass
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool, **files: str) -> pytest.RunResult:
    """pytest over `files` with only the CI rules as plugin, CI set or not."""
    for var in ("CI", "DODAS_SKIP_REPORT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    if ci:
        monkeypatch.setenv("CI", "true")
    pytester.makepyfile(**files)
    return pytester.runpytest("-p", "support.ci_skips", "-p", "no:cacheprovider", "-q")


def test_a_skip_passes_outside_ci_and_is_counted(pytester, monkeypatch):
    r = run(pytester, monkeypatch, False, test_probe=SKIPPING_FIXTURE)
    assert r.ret == pytest.ExitCode.OK, r.stdout.str()
    r.stdout.fnmatch_lines(["skips: 1 (test_probe.py::test_end_to_end: the server is missing)"])


def test_a_skip_fails_in_ci(pytester, monkeypatch):
    r = run(pytester, monkeypatch, True, test_probe=SKIPPING_FIXTURE)
    assert r.ret == pytest.ExitCode.TESTS_FAILED, r.stdout.str()
    r.assert_outcomes(passed=1, errors=1)  # the skip was the fixture's: an error at setup
    r.stdout.fnmatch_lines(["*skipped in CI, which must run every test: the server is missing*"])


def test_a_file_skipped_while_collected_is_counted_outside_ci(pytester, monkeypatch):
    r = run(pytester, monkeypatch, False, test_optional=SKIPPED_FILE, test_other="def test_ok():\n    pass\n")
    assert r.ret == pytest.ExitCode.OK, r.stdout.str()
    r.stdout.fnmatch_lines(["skips: 1 (test_optional.py: the extra is not installed)"])


def test_a_file_skipped_while_collected_fails_in_ci_and_is_named(pytester, monkeypatch):
    """The hole this rule closes: a module-level importorskip skips the whole file
    before any of its tests exists, so no test report ever says "skipped"."""
    r = run(pytester, monkeypatch, True, test_optional=SKIPPED_FILE, test_other="def test_ok():\n    pass\n")
    assert r.ret == pytest.ExitCode.TESTS_FAILED, r.stdout.str()
    r.assert_outcomes(passed=1, skipped=1)  # the other files still ran
    r.stdout.fnmatch_lines([
        "FAILED test_optional.py: skipped in CI, which must run every test: the extra is not installed",
        "skips: 1 (test_optional.py: the extra is not installed)",
    ])


def test_the_report_file_gets_the_line(pytester, monkeypatch, tmp_path):
    report = tmp_path / "skips"
    monkeypatch.setenv("DODAS_SKIP_REPORT", str(report))
    pytester.makepyfile(test_probe=SKIPPING_FIXTURE)
    pytester.runpytest("-p", "support.ci_skips", "-p", "no:cacheprovider", "-q")
    assert report.read_text() == "skips: 1 (test_probe.py::test_end_to_end: the server is missing)\n"


def test_ci_runs_with_ci_set():
    """The rule holds whoever calls the CI entry point: .ci/run sets CI itself."""
    from support.paths import ROOT

    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    ci = next(n for n, ln in enumerate(lines) if ln.startswith("export CI=true"))
    assert ci < next(n for n, ln in enumerate(lines) if "make.py test" in ln), lines


# -- one home for what tests share -----------------------------------------------------------
def shared_from_tests(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a test module or of conftest in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0].startswith("test_") or n == "conftest"
                  or n.startswith("tests.")]
    return found


def test_no_module_imports_a_test_module_or_conftest():
    modules = sorted([*TESTS.glob("*.py"), *(TESTS / "support").glob("*.py")])
    assert len(modules) > 50
    wrong = [f"{m.relative_to(TESTS)}:{line}: imports {name}" for m in modules
             for line, name in shared_from_tests(m.read_text(encoding="utf-8"))]
    assert wrong == [], "shared helpers and fixtures go to tests/support/ (fixtures: a plugin in conftest.py):\n" \
        + "\n".join(wrong)


@pytest.mark.parametrize("source, expect", [
    ("from test_server import issuer, serve\n", [(1, "test_server")]),
    ("import test_htcondor\n", [(1, "test_htcondor")]),
    ("def f():\n    from conftest import ROOT\n", [(2, "conftest")]),
    ("from tests.test_chart import render\n", [(1, "tests.test_chart")]),
    ("from support.server import serve\nimport pytest\nfrom dodas import testing\n", []),
])
def test_the_checker_sees_imports_of_test_modules(source, expect):
    assert shared_from_tests(source) == expect
