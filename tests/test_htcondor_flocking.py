"""Flocking between two pools of templates/htcondor.yaml on the local provider,
with HTCondor's real daemons: the "remote" pool's administrator issues a token
with the remote central manager's own `condor_token_create`; the "local" pool is
deployed with `flock_to` naming the remote collector and that token as
`flock_token` (from an inputs file: a token is never on a command line). A job
the local pool's single-core startd cannot take (it asks for 2 cores) runs on
the remote pool's 2-core startd (its slot's size the job prints) and returns its output to the local schedd."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from support.htcondor_pool import PoolClient, history, instance_config, job_dir, need_htcondor
from support.livecluster import Dodas, processes_of
from support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "templates" / "htcondor.yaml"
SMALL = ["-i", "master_cpus=1", "-i", "master_mem=1 GiB", "-i", "worker_mem=1 GiB", "-i", "number_of_workers=1"]
#: a hang guard only: two pools' up, a few negotiation cycles and the flocking, on a busy machine
TIMEOUT_S = 900.0
pytestmark = pytest.mark.timeout(3600)


def test_a_job_flocks_to_another_pool_with_the_token_that_pool_issued(tmp_path, monkeypatch):
    need_htcondor(monkeypatch)
    d = Dodas(tmp_path / "home")
    d.env.update({k: v for k, v in os.environ.items() if k == "DODAS_HTCONDOR_ROOT"})
    sub = job_dir()
    deployed = []
    try:
        d.run("up", str(POOL), "-p", "local", "--name", "remote", "--yes", *SMALL, "-i", "worker_cpus=2",
              timeout=1800)
        deployed.append("remote")
        remote = d.outputs("remote")
        remote_cm = PoolClient(instance_config(d.home, "central_manager", d.json("status", "remote")["id"]))
        # the remote pool's administrator issues a token for the local schedd, with the remote pool's key
        r = remote_cm.run("condor_token_create", "-identity", f"condor@{remote['trust_domain']}",
                          "-key", "POOL", "-lifetime", "3600")
        assert r.returncode == 0 and r.stdout.startswith("eyJ"), r.stderr
        inputs = tmp_path / "flock.yaml"
        fd = os.open(inputs, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({"flock_to": [remote["collector"]], "flock_token": r.stdout.strip()}, f)

        d.run("up", str(POOL), "-p", "local", "--name", "local", "--yes", *SMALL, "-i", "worker_cpus=1",
              "-f", str(inputs), timeout=1800)
        deployed.append("local")
        local = PoolClient(instance_config(d.home, "schedd", d.json("status", "local")["id"]))
        assert "eyJ" not in d.run("outputs", "local").stdout + d.run("logs", "local").stdout, "never shown"

        (sub / "job.sh").write_text("#!/bin/sh\necho \"flocked on $(hostname) with $1 cores\"\n")
        (sub / "job.sh").chmod(0o755)
        (sub / "job.sub").write_text(
            "executable = job.sh\narguments = $$(Cpus)\noutput = out\nerror = err\nlog = job.log\n"
            "should_transfer_files = YES\nrequest_cpus = 2\nrequest_memory = 32\nqueue\n")
        r = local.run("condor_submit", "-terse", "job.sub", cwd=sub)
        assert r.returncode == 0, r.stdout + r.stderr
        cluster = r.stdout.split(".")[0].strip()
        wait_until(lambda: f"{cluster}.0" in history(local, cluster), f"job {cluster}.0 done", TIMEOUT_S, every=1.0)
        code, slot = history(local, cluster)[f"{cluster}.0"]
        assert code == "0", (code, slot)
        # the remote pool ran it: the schedd's record names the pool it flocked to
        r = local.run("condor_history", "-af", "LastRemotePool", "-constraint", f"ClusterId == {cluster}")
        assert r.returncode == 0 and r.stdout.split() == [remote["collector"]], (r.stdout, r.stderr, remote)
        assert re.fullmatch(r"flocked on \S+ with 2 cores\n", (sub / "out").read_text())
    finally:
        for name in reversed(deployed):
            d.run("destroy", name, "--yes", check=False, timeout=900)
        shutil.rmtree(sub, ignore_errors=True)
    assert processes_of(d.home) == {}
