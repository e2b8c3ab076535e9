"""Shared fixtures: every test gets its own DODAS_HOME, so no test sees another's
state, cache or configuration, nor the user's."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
SEED = TEMPLATES / "dodas-course-spark-k8s.yaml"
SPARK = TEMPLATES / "spark-jupyter.yaml"


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
