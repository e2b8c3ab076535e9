"""The suite's own rules: in CI a skipped test is a failure, and every run ends
with a line that counts the skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_probe(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef needs():\n    pytest.skip('the server is missing')\n\n\n"
        "def test_end_to_end(needs):\n    pass\n\n\ndef test_unit():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DODAS_SKIP_REPORT", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)


def test_a_skip_passes_outside_ci_and_is_counted(tmp_path):
    r = run_probe(tmp_path, ci=False)
    assert r.returncode == 0, r.stdout
    assert "skips: 1 (test_probe.py::test_end_to_end: the server is missing)" in r.stdout


def test_a_skip_fails_in_ci(tmp_path):
    r = run_probe(tmp_path, ci=True)
    assert r.returncode == 1, r.stdout
    assert "skipped in CI, which must run every test: the server is missing" in r.stdout
