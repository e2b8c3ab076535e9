"""The deployment lock and attempts: `unlock` refuses a holder that still runs (with
`--force` too, when it runs on this host),
`status` tells a dead holder (and the attempt its death interrupted) without
writing anything, and an attempt always ends with what really happened to it:
kill -9, Ctrl-C, SIGTERM, an internal error. Every test runs on SQLite and on
PostgreSQL (statedb.state_db), reading the state through the database URL."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.livecluster import DODAS, Dodas, compute_template, wait_while_running
from support.statedb import all_rows, execute, rows, url_of

HOST = socket.gethostname()


def providers_yaml(home: Path, latency: float = 0.0) -> None:
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(textwrap.dedent(f"""\
        providers:
          - name: sim
            type: simulated
            rank: 1
            create_latency: {latency}
        """))


def boxes(tmp_path: Path, count: int = 2) -> str:
    return compute_template(tmp_path / f"boxes{count}.yaml", count=count, cpus=1, mem="512 MiB")


def servers(home: Path) -> int:
    return len(list((home / "data" / "simulated" / "sim").glob("*/*.json")))


def set_owner(d: Dodas, name: str, owner: str) -> None:
    execute(url_of(d.env, d.home), "UPDATE deployments SET lock_owner=:o, lock_acquired_at=CURRENT_TIMESTAMP "
            "WHERE name=:n", {"o": owner, "n": name})


def stored_attempts(d: Dodas) -> list[tuple[str, str | None]]:
    return rows(url_of(d.env, d.home), "SELECT status, error FROM attempts ORDER BY id")


@pytest.fixture
def d(tmp_path, state_db):
    dodas = Dodas(tmp_path / "home")
    state_db.env(dodas.env)
    providers_yaml(dodas.home)
    return dodas


@pytest.fixture
def slow(tmp_path, state_db):
    """A provider that takes a second per machine: time to interrupt an attempt."""
    dodas = Dodas(tmp_path / "home")
    state_db.env(dodas.env)
    providers_yaml(dodas.home, latency=1.0)
    return dodas


HOLD = """
import sys, time
from dodas.state import lock
from dodas.state.store import Store
store = Store()
dep = store.get(sys.argv[1])
with store.session() as s:
    lock.acquire(s, s.get(type(dep), dep.id))
print(lock.me(), flush=True)
time.sleep(600)
"""


def test_unlock_refuses_a_live_holder_even_with_force(d, tmp_path):
    """`--force` is for a holder that cannot be checked (another host); a live
    holder on this host (same pid and start time) keeps its lock whatever is
    asked, and once it is gone a plain `unlock` clears it."""
    t = boxes(tmp_path)
    d.run("up", t, "--name", "held")
    # a real process takes the lock through the real lock code, and keeps running
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "held"], env=d.env, stdout=subprocess.PIPE, text=True)
    try:
        owner = holder.stdout.readline().strip()
        # host:pid:start-time#thread (the holder's main thread: its native id is its pid)
        assert re.fullmatch(rf"{re.escape(HOST)}:{holder.pid}:\d+#t{holder.pid}", owner), owner
        r = d.run("unlock", "held", check=False)
        assert r.returncode == 3, r.stderr
        assert f"pid {holder.pid} on this host is still running" in r.stderr and "--force" in r.stderr
        assert "Traceback" not in r.stderr
        st = d.json("status", "held")
        assert st["locked_by"] == owner and st["lock"]["alive"] is True
        assert f"locked by pid {holder.pid} on {HOST}, running since" in d.run("status", "held").stdout
        assert d.run("up", t, "--name", "held", check=False).returncode == 3
        r = d.run("unlock", "held", "--force", check=False)
        assert r.returncode == 3, r.stdout + r.stderr
        assert f"locked by pid {holder.pid} on this host ({HOST}), which is still running" in r.stderr
        assert "--force is refused" in r.stderr and "Traceback" not in r.stderr
        assert d.json("status", "held")["locked_by"] == owner, "the live holder keeps its lock"
    finally:
        holder.kill()
        holder.wait()
    assert f"was held by {owner}" in d.run("unlock", "held").stdout, "a dead holder needs no --force"
    assert d.json("status", "held")["locked_by"] is None
    d.run("destroy", "held", "--yes")


def test_unlock_force_leaves_a_running_up_alone(slow, tmp_path):
    """The attack: `unlock --force` under a live `up` of this host, then a
    `destroy`. The lock stays, the destroy is refused, the `up` completes. The
    `up` is paused (SIGSTOP) meanwhile, so that it is still mid-way however slow
    this machine is: a stopped process is alive, and holds its lock."""
    d = slow
    t = boxes(tmp_path, 3)
    proc = d.popen("up", t, "--name", "busy", "--parallelism", "1")
    wait_while_running(proc, lambda: servers(d.home) >= 1, "a machine was made")
    proc.send_signal(signal.SIGSTOP)
    try:
        assert servers(d.home) < 3 or d.json("status", "busy")["locked_by"], "the up is still under way"
        r = d.run("unlock", "busy", "--force", check=False)
        assert r.returncode == 3 and f"locked by pid {proc.pid} on this host" in r.stderr, r.stdout + r.stderr
        assert d.run("destroy", "busy", "--yes", check=False).returncode == 3
    finally:
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    assert d.json("status", "busy")["status"] == "CREATE_COMPLETE" and servers(d.home) == 3
    d.run("destroy", "busy", "--yes")


def test_unlock_of_a_holder_on_another_host_needs_force(d, tmp_path):
    d.run("up", boxes(tmp_path), "--name", "far")
    set_owner(d, "far", "elsewhere:123:456")
    r = d.run("unlock", "far", check=False)
    assert r.returncode == 3
    assert "another host (elsewhere, pid 123)" in r.stderr and 'dodas unlock far --force' in r.stderr
    assert d.json("status", "far")["lock"]["alive"] is None
    assert "cannot be checked" in d.run("status", "far").stdout
    assert "was held by elsewhere:123:456" in d.run("unlock", "far", "--force").stdout
    d.run("destroy", "far", "--yes")


def test_lock_holder_identity_is_pid_and_start_time(d, tmp_path):
    """A lock whose pid now names another process (here: this test's own, with
    another start time) is a dead holder's; an old owner without a start time
    is compared by pid only."""
    d.run("up", boxes(tmp_path), "--name", "reused")
    set_owner(d, "reused", f"{HOST}:{os.getpid()}:?")
    assert d.run("unlock", "reused", check=False).returncode == 3, "an old owner's live pid still holds"
    set_owner(d, "reused", f"{HOST}:{os.getpid()}:1")
    st = d.json("status", "reused")
    assert st["lock"]["alive"] is False
    out = d.run("status", "reused").stdout
    assert "no longer running" in out and "next dodas up or destroy takes the lock over" in out
    assert "unlocked (was held by" in d.run("unlock", "reused").stdout, "a dead holder needs no --force"
    set_owner(d, "reused", "not-an-owner")
    assert "unlocked (was held by not-an-owner)" in d.run("unlock", "reused").stdout, "nor does an unreadable one"
    d.run("destroy", "reused", "--yes")


def test_kill_9_attempt_shown_interrupted_then_recorded_by_the_next_up(slow, tmp_path):
    d = slow
    t = boxes(tmp_path, 4)
    proc = d.popen("up", t, "--name", "k9", "--parallelism", "1")
    wait_while_running(proc, lambda: servers(d.home) >= 1, "a machine was made")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert stored_attempts(d) == [("running", None)]
    before = all_rows(url_of(d.env, d.home))
    st = d.json("status", "k9")
    assert st["lock"]["alive"] is False and st["lock"]["pid"] == proc.pid
    assert st["attempts"][0]["status"] == "interrupted" and st["attempts"][0]["recorded_status"] == "running"
    assert st["attempts"][0]["error"] == (f"its dodas died (pid {proc.pid} on {HOST}); the next up or destroy "
                                          "records it")
    out = d.run("status", "k9").stdout
    assert f"#1 sim          interrupted: its dodas died (pid {proc.pid} on {HOST})" in out
    assert f"locked by pid {proc.pid} on {HOST}, which is no longer running" in out
    assert all_rows(url_of(d.env, d.home)) == before, "status must not write"
    d.run("up", t, "--name", "k9")  # continues the deployment: the resumed create is an attempt of its own
    attempts = stored_attempts(d)
    assert [a[0] for a in attempts] == ["interrupted", "succeeded"]
    assert attempts[0][1] == f"its dodas died (pid {proc.pid} on {HOST})"
    assert d.json("status", "k9")["status"] == "CREATE_COMPLETE"
    d.run("destroy", "k9", "--yes")


@pytest.mark.parametrize("sig, group, cause", [
    (signal.SIGINT, True, "Ctrl-C or SIGINT"),  # Ctrl-C: the terminal signals the whole group
    (signal.SIGTERM, False, "SIGTERM"),
])
def test_signalled_attempt_ends_interrupted(slow, tmp_path, sig, group, cause):
    d = slow
    t = boxes(tmp_path, 4)
    proc = subprocess.Popen([*DODAS, "up", t, "--name", "sig", "--parallelism", "1"], env=d.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_while_running(proc, lambda: servers(d.home) >= 1, "a machine was made")
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err
    assert stored_attempts(d) == [("interrupted", f"dodas was stopped by {cause}")]
    st = d.json("status", "sig")
    assert st["locked_by"] is None, "an interrupted run releases its lock"
    assert st["status"] == "CREATE_FAILED" and st["reason"] == f"interrupted ({cause})"
    d.run("destroy", "sig", "--yes")
    assert servers(d.home) == 0


def test_internal_error_ends_the_attempt_failed_with_its_cause(tmp_path, dodas_home, state_db,
                                                                monkeypatch):
    """A bug in the middle of an attempt (here: the progress reporter breaks)
    ends the attempt as failed, naming the error, and releases the lock."""
    from dodas.engine.engine import DeploymentFailed
    from dodas.services import deploy, read

    if state_db.url:
        monkeypatch.setenv("DODAS_DB_URL", state_db.url)
    providers_yaml(dodas_home)

    class Broken:
        def state(self, inst: str, state: str, detail: str = "") -> None:
            raise RuntimeError("the reporter broke")

        def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None:
            pass

    with pytest.raises((DeploymentFailed, RuntimeError)):
        deploy.up(boxes(tmp_path), name="bug", pairs=None, inputs_file=None, provider_name=None, parallelism=2,
                  listener=Broken())
    st = read.status("bug")
    assert [a["status"] for a in st["attempts"]] == ["failed"]
    assert "RuntimeError: the reporter broke" in st["attempts"][0]["error"]
    assert st["locked_by"] is None and st["status"] == "CREATE_FAILED"


def test_status_json_of_a_healthy_deployment(d, tmp_path):
    d.run("up", boxes(tmp_path), "--name", "fine")
    r = d.run("status", "fine", "--json")
    st = json.loads(r.stdout)
    assert r.returncode == 0 and st["degraded"] == {} and st["lock"] is None
    assert [a["status"] for a in st["attempts"]] == ["succeeded"]
    d.run("destroy", "fine", "--yes")
