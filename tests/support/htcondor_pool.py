"""A real HTCondor pool on the local provider, as the tests use it: HTCondor's
programs (the host's, or those of the Debian 13 root `make.py test` prepares with
`dodas htcondor-root` in root's own cache, which the tests' homes are pointed at),
and a client of a deployed pool that runs them with the schedd's configuration."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dodas.providers import htcondor_root


def need_htcondor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip (a failure under CI) unless HTCondor's daemons can run here; point this
    test's dodas at the root prepared in root's own cache."""
    if htcondor_root.installed():
        return
    if os.geteuid() != 0:
        pytest.skip("HTCondor is not installed and running it from a Debian 13 root needs root")
    # where `make.py test` prepared it: dodas's cache directory without the tests' DODAS_HOME
    shared = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dodas" / "htcondor-root"
    roots = sorted((d for d in shared.glob("*") if (d / "usr/sbin/condor_master").exists()),
                   key=lambda d: d.stat().st_mtime) if shared.is_dir() else []
    if not roots:
        pytest.skip("HTCondor is not installed and no Debian 13 root is prepared: run "
                    "`python -m dodas htcondor-root` as root (make.py test does)")
    monkeypatch.setenv("DODAS_HTCONDOR_ROOT", str(roots[-1]))


class PoolClient:
    """HTCondor's command-line tools as a user of the pool's submit host runs them:
    with the schedd instance's configuration (CONDOR_CONFIG)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.prefix = htcondor_root.prefix()
        assert self.prefix is not None, "HTCondor cannot run here"

    def run(self, *argv: str, cwd: str | Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONDOR_CONFIG": str(self.config), **(env or {})}
        return subprocess.run([*self.prefix, *argv], cwd=cwd, env=full, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


def instance_config(home: Path, node: str, deployment_id: str = "*") -> Path:
    """The condor_config of the (one) instance of `node` under a DODAS_HOME (of one
    deployment's, by its id, where the home holds several)."""
    found = sorted((home / "data" / "local").glob(f"{deployment_id}/*/{node}/condor/condor_config"))
    assert len(found) == 1, f"{node}: {found}"
    return found[0]


def job_dir() -> Path:
    """A directory for a user's submit files that the jobs' owner can write: root's jobs
    run as nobody (pytest's own directories are root's alone). The caller removes it."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="dodas-condor-test-"))
    d.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(d, "nobody")
    return d


def history(client: PoolClient, cluster: str) -> dict[str, tuple[str, str]]:
    """The finished jobs of a cluster: "C.P" -> (exit code, the slot they ran in)."""
    r = client.run("condor_history", "-af", "ClusterId", "ProcId", "ExitCode", "LastRemoteHost",
                   "-constraint", f"ClusterId == {cluster}")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()]
    return {f"{c}.{p}": (code, host) for c, p, code, host in rows}
