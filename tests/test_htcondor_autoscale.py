"""The autoscaler's whole loop against a live HTCondor pool (templates/htcondor.yaml
on the local provider, HTCondor's real daemons): `dodas autoscale NAME` as a user
runs it, and a cluster of two jobs on a pool of one single-core startd. Both jobs
hold their core until the test releases them, so the one that cannot start makes
the autoscaler add a startd, named in the decision's reason, and runs there
beside the other (which job HTCondor starts first is its own choice); once both
startds have been idle for `idle_time`, one is drained (condor_drain, graceful)
and removed, and every job finished (none lost)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from support.autoscaler import Autoscaler
from support.htcondor_pool import PoolClient, history, instance_config, job_dir, need_htcondor
from support.livecluster import Dodas, processes_of
from support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "templates" / "htcondor.yaml"
NAME = "elastic-pool"
INPUTS = ["-i", "number_of_workers=1", "-i", "min_workers=1", "-i", "max_workers=2", "-i", "idle_time=15",
          "-i", "cooldown=5", "-i", "worker_cpus=1", "-i", "worker_mem=1 GiB", "-i", "master_cpus=1",
          "-i", "master_mem=1 GiB"]
#: hang guards only: a pool's up, a startd added and configured, the idle time, a destroy, on a busy machine
TIMEOUT_S = 900.0
pytestmark = pytest.mark.timeout(3600)

#: each job holds its core until the test releases them: the second must find another startd
JOB = """#!/bin/sh
while [ ! -e "$2/release" ]; do sleep 0.5; done
echo "job $1 on $(hostname)"
"""


def startds(client: PoolClient) -> list[str]:
    r = client.run("condor_status", "-startd", "-af", "Name")
    assert r.returncode == 0, r.stderr
    return sorted(n.split("@")[0] for n in r.stdout.split())   # "startd-0@host"


def running(client: PoolClient, cluster: str) -> dict[str, str]:
    """The cluster's running jobs: "C.P" -> the startd they run on."""
    r = client.run("condor_q", "-af", "ClusterId", "ProcId", "RemoteHost",
                   "-constraint", f"ClusterId == {cluster} && JobStatus == 2")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()]
    return {f"{c}.{p}": host.split("@")[1] for c, p, host in rows}   # "slot1_1@startd-1@host"


def workers_of(d: Dodas) -> list[str]:
    """The execute hosts' instances (`status --json`, also while degraded: exit 5)."""
    r = d.run("status", NAME, "--json", check=False)
    return [i["id"] for i in json.loads(r.stdout)["instances"] if i["node"] == "execute_hosts"]


def test_a_waiting_job_gets_a_startd_which_is_drained_and_removed_when_idle(tmp_path, monkeypatch):
    need_htcondor(monkeypatch)
    d = Dodas(tmp_path / "home")
    d.env.update({k: v for k, v in os.environ.items() if k == "DODAS_HTCONDOR_ROOT"})
    sub = job_dir()
    scaler = None
    d.run("up", str(POOL), "-p", "local", "--name", NAME, "--yes", *INPUTS, timeout=1800)
    try:
        client = PoolClient(instance_config(d.home, "schedd"))
        assert startds(client) == ["startd-0"] and workers_of(d) == ["execute_hosts[0]"]
        scaler = Autoscaler(d, NAME, TIMEOUT_S)

        (sub / "job.sh").write_text(JOB)
        (sub / "job.sh").chmod(0o755)
        (sub / "job.sub").write_text(
            f"executable = job.sh\narguments = $(Process) {sub}\noutput = out.$(Process)\nerror = err.$(Process)\n"
            "log = jobs.log\nshould_transfer_files = YES\nrequest_cpus = 1\nrequest_memory = 32\nqueue 2\n")
        r = client.run("condor_submit", "-terse", "job.sub", cwd=sub)
        assert r.returncode == 0, r.stdout + r.stderr
        cluster = r.stdout.split(".")[0].strip()

        # a job waits for a core the pool does not have: a startd is added, the reason names the job
        added = scaler.wait_for("add")
        # (before the negotiator's cycle both jobs are idle, yet they need one core more than the pool has)
        assert added["count"] == 2 and re.match(r"[12] jobs? waiting for 1 core; adding 1 worker of 1 core",
                                                added["reason"]), added
        assert re.search(rf"waiting: job {cluster}\.[01] of \S+ is idle and requests 1 core", added["reason"]), added
        wait_until(lambda: startds(client) == ["startd-0", "startd-1"], "the new startd in the collector",
                   TIMEOUT_S, every=1.0)
        assert workers_of(d) == ["execute_hosts[0]", "execute_hosts[1]"]
        # the waiting job runs there while the other still holds startd-0's only core
        jobs = [f"{cluster}.0", f"{cluster}.1"]
        wait_until(lambda: len(running(client, cluster)) == 2, "both jobs running", TIMEOUT_S, every=1.0)
        assert sorted(running(client, cluster).values()) == ["startd-0", "startd-1"], running(client, cluster)
        (sub / "release").write_text("")
        wait_until(lambda: sorted(history(client, cluster)) == jobs, "both jobs done", TIMEOUT_S, every=1.0)
        done = history(client, cluster)
        assert sorted(slot.split("@")[1] for _, slot in done.values()) == ["startd-0", "startd-1"], done
        for p in "01":
            assert re.fullmatch(rf"job {p} on \S+\n", (sub / f"out.{p}").read_text())

        # both idle for idle_time: one is drained and removed, the other stays for min 1
        removed = scaler.wait_for("remove")
        assert removed["count"] == 1 and len(removed["remove"]) == 1, removed
        (gone,) = removed["remove"]
        assert f"{gone} idle for" in removed["reason"] and "(idle time 15 s)" in removed["reason"], removed
        (kept,) = {"execute_hosts[0]", "execute_hosts[1]"} - {gone}
        wait_until(lambda: workers_of(d) == [kept], f"{gone} removed", TIMEOUT_S, every=1.0)
        left = f"startd-{kept[-2]}"
        wait_until(lambda: startds(client) == [left], f"only {left} in the collector", TIMEOUT_S, every=1.0)
        logs = d.run("logs", NAME).stdout
        assert added["reason"] in logs and removed["reason"] in logs
        # drained before it went (condor_drain, graceful), the startd named
        assert re.search(rf"{re.escape(gone)} drained \(htcondor worker \S+\): nothing runs there any more", logs), logs
        assert scaler.stop() == 0, "Ctrl-C stops it cleanly"
        scaler = None

        # no job lost: both finished once, with their output, and nothing is left in the queue
        done = history(client, cluster)
        assert sorted(done) == jobs and all(c == "0" for c, _ in done.values()), done
        r = client.run("condor_q", "-af", "ClusterId")
        assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
    finally:
        if scaler is not None:
            scaler.stop()
        d.run("destroy", NAME, "--yes", check=False, timeout=900)
        shutil.rmtree(sub, ignore_errors=True)
    assert processes_of(d.home) == {}
