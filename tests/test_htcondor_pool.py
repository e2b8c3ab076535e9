"""templates/htcondor.yaml on the local provider, with HTCondor's real daemons (the
host's, or those of the Debian 13 root `dodas htcondor-root` prepares): `up` is
ready only once a probe job ran; a user's cluster of 20 jobs all complete with the
right output; a client without the pool's token is refused by the collector and
the schedd, the same request with it is accepted; destroy leaves no daemon, no
spool and no token file."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from support.htcondor_pool import PoolClient, instance_config, need_htcondor
from support.livecluster import Dodas, processes_of

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "templates" / "htcondor.yaml"
INPUTS = ["-i", "number_of_workers=2", "-i", "worker_cpus=1", "-i", "worker_mem=1 GiB",
          "-i", "master_cpus=1", "-i", "master_mem=1 GiB"]
JOBS = 20


def _state_dirs() -> set[str]:
    return {str(p) for p in Path("/tmp").glob("dodas-condor-*")}


def _address(client: PoolClient, daemon: str) -> str:
    """A daemon's address as its own address file says it (no collector asked)."""
    r = client.run("condor_config_val", f"{daemon.upper()}_ADDRESS_FILE")
    assert r.returncode == 0, r.stderr
    text = Path(r.stdout.strip()).read_text()
    return text.splitlines()[0].strip()


def test_a_real_pool_runs_jobs_refuses_strangers_and_leaves_nothing(tmp_path, monkeypatch):
    need_htcondor(monkeypatch)
    before = _state_dirs()
    dodas = Dodas(tmp_path / "home")
    dodas.env.update({k: v for k, v in os.environ.items() if k == "DODAS_HTCONDOR_ROOT"})
    cleanup: list[Path] = []
    dodas.run("up", str(POOL), "-p", "local", "--name", "pool", "--yes", *INPUTS, timeout=1800)
    try:
        status = dodas.json("status", "pool")
        assert status["status"] == "CREATE_COMPLETE", status
        client = PoolClient(instance_config(dodas.home, "schedd"))

        # every startd in the collector, with the pool's names
        r = client.run("condor_status", "-startd", "-af", "Name")
        assert r.returncode == 0, r.stderr
        assert sorted(name.split("@")[0] for name in r.stdout.split()) == ["startd-0", "startd-1"], r.stdout
        # no startd spends its start benchmarking the machine (HTCondor's default runs
        # condor_mips and condor_kflops while LastBenchmark == 0)
        startds = sorted((dodas.home / "data" / "local").glob("*/*/startd/condor/condor_config"))
        assert len(startds) == 2, startds
        for config in startds:
            r = PoolClient(config).run("condor_config_val", "RunBenchmarks")
            assert r.returncode == 0 and r.stdout.strip().lower() == "false", (config, r.stdout, r.stderr)

        # a user's cluster of 20 jobs, each echoing its own number
        # a directory the jobs' owner can reach (root's jobs run as nobody, and pytest's own
        # directories are root's alone)
        sub = Path(tempfile.mkdtemp(prefix="dodas-condor-test-"))
        cleanup.append(sub)
        (sub / "job.sh").write_text("#!/bin/sh\necho \"job $1 on $(hostname)\"\n")
        (sub / "job.sh").chmod(0o755)
        (sub / "job.sub").write_text(
            "executable = job.sh\narguments = $(Process)\noutput = out.$(Process)\nerror = err.$(Process)\n"
            "log = jobs.log\nshould_transfer_files = YES\nrequest_cpus = 1\nrequest_memory = 32\n"
            f"queue {JOBS}\n")
        sub.chmod(0o755)
        if os.geteuid() == 0:  # root's jobs run as nobody, who writes their output here
            shutil.chown(sub, "nobody")
        r = client.run("condor_submit", "job.sub", cwd=sub)
        assert r.returncode == 0 and f"{JOBS} job(s) submitted" in r.stdout, r.stdout + r.stderr
        guard = time.monotonic() + 600  # hang guard: the schedd writes the log once it has the jobs
        while not (sub / "jobs.log").exists() and time.monotonic() < guard:
            time.sleep(0.5)
        r = client.run("condor_wait", "-wait", "1500", str(sub / "jobs.log"), cwd=sub, timeout=1800)
        assert r.returncode == 0, r.stdout + r.stderr
        for i in range(JOBS):
            assert re.fullmatch(rf"job {i} on \S+\n", (sub / f"out.{i}").read_text()), i
        r = client.run("condor_history", "-af", "ExitCode", "LastRemoteHost", "-constraint", "ClusterId > 1")
        assert r.returncode == 0, r.stderr
        rows = [line.split() for line in r.stdout.splitlines() if line.strip()]
        assert len(rows) == JOBS and all(code == "0" for code, _host in rows), rows
        assert {host.split("@")[1] for _code, host in rows} <= {"startd-0", "startd-1"}, rows

        # without the pool's token (as from another host: no FS), the collector and
        # the schedd refuse; the same request with the token is accepted
        empty = tmp_path / "no-tokens"
        empty.mkdir(mode=0o700)
        stranger = {"_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "IDTOKENS",
                    "_CONDOR_SEC_DEFAULT_AUTHENTICATION_METHODS": "IDTOKENS",
                    "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY": str(empty), "_CONDOR_SEC_TOKEN_DIRECTORY": str(empty),
                    "_CONDOR_SEC_PASSWORD_DIRECTORY": str(empty)}
        member = {"_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "IDTOKENS",
                  "_CONDOR_SEC_DEFAULT_AUTHENTICATION_METHODS": "IDTOKENS"}
        for daemon in ("collector", "schedd"):
            addr = _address(PoolClient(instance_config(dodas.home, "central_manager")), daemon) \
                if daemon == "collector" else _address(client, daemon)
            refused = client.run("condor_ping", "-address", addr, "-table", "READ", "WRITE", env=stranger)
            assert refused.returncode != 0, (daemon, refused.stdout, refused.stderr)
            assert "FAIL" in refused.stdout + refused.stderr or "ERROR" in refused.stdout + refused.stderr
            accepted = client.run("condor_ping", "-address", addr, "-table", "READ", "WRITE", env=member)
            assert accepted.returncode == 0, (daemon, accepted.stdout, accepted.stderr)
            assert "IDTOKENS" in accepted.stdout, accepted.stdout
        assert processes_of(dodas.home), "the pool's daemons carry the machine's marker"
        _a_killed_startd_degrades_the_pool_and_up_restores_it(dodas, client)
        _autoscaler_reads_and_drains_the_live_pool(dodas, client, sub)
    finally:
        dodas.run("destroy", "pool", "--yes", timeout=900)
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)
    assert processes_of(dodas.home) == {}
    assert _state_dirs() <= before, "the daemons' spool, execute and log directories are gone"
    assert not list((dodas.home / "data").rglob("POOL")) and not list((dodas.home / "data").rglob("dodas-pool"))
    assert not [p for p in Path("/proc").glob("[0-9]*/environ")
                if _reads(p, f"DODAS_MACHINE={dodas.home}")]


def _reads(environ: Path, needle: str) -> bool:
    try:
        return needle.encode() in environ.read_bytes()
    except OSError:
        return False


def test_without_htcondor_preflight_says_what_to_install(cli, monkeypatch, tmp_path):
    # no HTCondor on this PATH (a host's package is in /usr/sbin) and no prepared root
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("DODAS_HTCONDOR_ROOT", str(tmp_path / "none"))
    r = cli("up", str(POOL), "-p", "local", "--yes", *INPUTS)
    assert r.code != 0
    assert all(f'"{node}"' in r.err for node in ("central_manager", "schedd", "startd")), r.err
    assert "condor_master" in r.err and "dodas htcondor-root" in r.err and "apt-get install condor" in r.err, r.err
    assert "Traceback" not in r.err


def _autoscaler_reads_and_drains_the_live_pool(dodas: Dodas, client: PoolClient, sub: Path) -> None:
    """The autoscaler's HTCondor reader (htcondor2 bindings, the token dodas signs from
    the pool's key) against the live collector, schedd and startds."""
    import asyncio

    from dodas.elastic.readers.htcondor import HTCondorReader
    from dodas.htcondor_tokens import idtoken

    outputs = dodas.outputs("pool")
    trust = outputs["trust_domain"]
    key = next((dodas.home / "data").rglob("central_manager/condor/passwords.d/POOL")).read_text()
    reader = HTCondorReader(outputs["collector"], token=idtoken(key, f"condor@{trust}", trust))
    addresses = {m["address"] for m in (json.loads(p.read_text()) for p in
                                        (dodas.home / "data" / "local").glob("*/execute_hosts-*/machine.json"))}
    load = asyncio.run(reader.read())
    assert {w.host for w in load.workers} == addresses and len(load.workers) == 2, load
    assert all(w.cores == 1 and not w.busy for w in load.workers), load   # the instances' own size
    # a job no slot can take waits, named
    (sub / "big.sub").write_text("executable = /bin/true\ntransfer_executable = false\nrequest_cpus = 4\n"
                                 "should_transfer_files = YES\nlog = big.log\nqueue\n")
    r = client.run("condor_submit", "-terse", "big.sub", cwd=sub)
    assert r.returncode == 0, r.stderr
    cluster = r.stdout.split(".")[0].strip()
    load = asyncio.run(reader.read())
    assert load.waiting_cores >= 2 and any(f"job {cluster}.0 " in w and "4 cores" in w for w in load.waiting), load
    # a token of another key is refused
    stranger = HTCondorReader(outputs["collector"], token=idtoken("x" * 43, f"condor@{trust}", trust))
    with pytest.raises(Exception, match="collector"):
        asyncio.run(stranger.read())
    # a graceful drain of an idle startd: the startd itself says it drains
    worker = load.workers[0]
    assert asyncio.run(reader.drain(worker)) is True
    guard = time.monotonic() + 300
    while time.monotonic() < guard:
        states = {w.host: w.state for w in asyncio.run(reader.read()).workers}
        if states.get(worker.host) == "draining":
            break
        time.sleep(1)
    assert states[worker.host] == "draining" and states[load.workers[1].host] != "draining", states


def _a_killed_startd_degrades_the_pool_and_up_restores_it(dodas: Dodas, client: PoolClient) -> None:
    """A startd's condor_master and its daemons killed behind dodas's back: status says
    degraded, and `up` starts it again, back in the collector."""
    import signal

    st = dodas.json("status", "pool")
    startd = next(i for i in st["instances"] if i["id"] == "startd[1]")
    os.killpg(startd["services"]["condor_master"]["pgid"], signal.SIGKILL)
    machine = str(next((dodas.home / "data" / "local").glob("*/execute_hosts-1")))
    for pid in processes_of(dodas.home):   # its daemons, each in a process group of its own
        if _reads(Path(f"/proc/{pid}/environ"), f"DODAS_MACHINE={machine}\0"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    guard = time.monotonic() + 300
    while time.monotonic() < guard:
        r = dodas.run("status", "pool", "--json", check=False)
        if r.returncode == 5 and "startd[1]" in json.loads(r.stdout)["degraded"]:
            break
        time.sleep(1)
    assert "startd[1]" in json.loads(r.stdout)["degraded"], r.stdout
    dodas.run("up", str(POOL), "-p", "local", "--name", "pool", "--yes", *INPUTS, timeout=1800)
    assert not json.loads(dodas.run("status", "pool", "--json", check=False).stdout)["degraded"]
    guard = time.monotonic() + 300
    while time.monotonic() < guard:
        r = client.run("condor_status", "-startd", "-af", "Name")
        if len(r.stdout.split()) == 2:
            break
        time.sleep(1)
    assert sorted(n.split("@")[0] for n in r.stdout.split()) == ["startd-0", "startd-1"], r.stdout
