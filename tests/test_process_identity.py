"""A process is its pid *and* its start time: a recorded pid that the kernel has
given to another program is never taken for the service, nor signalled, by
`dodas status`, `dodas up`, `dodas destroy`, `dodas_service` or procs.terminate.
Real processes, real /proc, real signals throughout.

A recycled pid is made the only way a test can make one quickly: the record of a
service that died is rewritten to name a live, unrelated process while keeping
the dead service's start time, which is exactly what the record looks like once
the kernel has reused the pid."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.livecluster import Dodas, db_rows, kill_leftovers, processes_of, wait_for
from support.templates import write_playbook_template

from dodas import procs

VENV_BIN = Path(sys.executable).parent
LIBRARY = Path(procs.__file__).parent / "configure" / "library"


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


@pytest.fixture
def unrelated():
    """A program dodas never started: a session (and process group) of its own
    with a child in it, no dodas marker in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DODAS_")}
    p = subprocess.Popen(["sh", "-c", "sleep 600 & wait"], env=env, start_new_session=True)
    wait_for(lambda: _children(p.pid), timeout=10)
    yield p
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:  # a failing test may have stopped it
        pass
    p.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _ticks(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _uptime_ticks() -> int:
    """The system's uptime in the clock ticks that /proc/PID/stat's start time counts."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def service_template(tmp_path: Path, task: str) -> str:
    """A template of one machine with one service started by `dodas_service` (the
    task given), reported the way the Spark and Jupyter playbooks report theirs."""
    report = """
        - name: dodas_report
          ansible.builtin.set_fact:
            dodas_report:
              services: {app: {pid: "{{ app.pid }}", pgid: "{{ app.pgid }}", log: "{{ app.log }}",
                               start: "{{ app.start | default('') }}"}}
        """
    return write_playbook_template(tmp_path, textwrap.dedent(task).strip("\n") + "\n" + textwrap.dedent(report),
                                   name="svc.yaml")


SLEEPER = """
- name: Start the application
  dodas_service:
    name: app
    instance_dir: "{{ dodas_instance_dir }}"
    command: [sleep, "600"]
    timeout: 30
  register: app
"""


def rewrite_service(home: Path, dep_id: str, **changes: object) -> None:
    """Change the recorded service (state row and the record file on the machine)."""
    con = sqlite3.connect(home / "data" / "state.db")
    try:
        row = con.execute("SELECT id, attributes FROM instances WHERE deployment_id=? AND node='app'",
                          (dep_id,)).fetchone()
        attrs = json.loads(row[1])
        attrs["services"]["app"].update({k: str(v) for k, v in changes.items()})
        con.execute("UPDATE instances SET attributes=? WHERE id=?", (json.dumps(attrs), row[0]))
        con.commit()
    finally:
        con.close()
    for rec in (home / "data" / "local" / dep_id).glob("*/app/services/app.json"):
        data = json.loads(rec.read_text())
        data.update(changes)
        rec.write_text(json.dumps(data))


def service(d: Dodas, name: str) -> dict:
    st = json.loads(d.run("status", name, "--json", check=False).stdout)  # exits 5 when a service is dead
    return next(i for i in st["instances"] if i["id"] == "app[0]")["services"]["app"]


# -- procs: the library every local liveness check and signal goes through ---------
def test_procs_tell_a_recycled_pid_from_the_process(unrelated):
    me = procs.identify(unrelated.pid)
    assert me == procs.Identity(unrelated.pid, _ticks(unrelated.pid))
    recycled = procs.Identity(unrelated.pid, str(int(me.start) - 1))  # same pid, started at another time
    assert procs.alive(me) and not procs.alive(recycled)
    assert procs.running(unrelated.pid, me.start) and not procs.running(unrelated.pid, recycled.start)
    assert procs.running(unrelated.pid, None), "an old record without a start time falls back to the pid"
    procs.terminate([recycled], grace=1.0)
    time.sleep(0.3)
    assert unrelated.poll() is None, "a recycled pid must not be signalled"
    child = _children(unrelated.pid)[0]
    procs.terminate([procs.identify(child)], grace=5.0)
    assert not _running(child), "the process itself is stopped"


def test_find_by_env_returns_identities(tmp_path):
    env = {**os.environ, "DODAS_MACHINE": str(tmp_path / "m")}
    p = subprocess.Popen(["sleep", "600"], env=env)
    try:
        wait_for(lambda: procs.find_by_env("DODAS_MACHINE", str(tmp_path / "m")), timeout=10)
        assert procs.find_by_env("DODAS_MACHINE", str(tmp_path / "m")) == [procs.Identity(p.pid, _ticks(p.pid))]
        assert procs.find_by_env("DODAS_MACHINE", str(tmp_path), below=True) == [procs.Identity(p.pid,
                                                                                               _ticks(p.pid))]
    finally:
        p.kill()
        p.wait()


def test_ssh_hosts_are_asked_by_identity(unrelated):
    """The script the ssh provider runs on a host (here run the same way, with the
    host's python3 and its /proc) answers by pid and start time."""
    from dodas.providers.base import ProcessRef
    from dodas.providers.ssh import ALIVE

    me = ProcessRef(unrelated.pid, _ticks(unrelated.pid))
    recycled = ProcessRef(unrelated.pid, str(int(me.start) + 7))
    old = ProcessRef.from_record({"pid": str(unrelated.pid), "pgid": str(unrelated.pid)})  # no start recorded
    gone = ProcessRef(2**22 + 1, "5")
    r = subprocess.run(["python3", "-c", ALIVE, *map(str, (me, recycled, old, gone))], capture_output=True,
                       text=True, check=True)
    assert json.loads(r.stdout) == {str(me): True, str(recycled): False, str(old): True, str(gone): False}


# -- dodas_service: stopping a recorded service on the host, through Ansible ---------
def run_module(args: dict) -> dict:
    """Run dodas_service on this host through the real `ansible` command; its result."""
    env = {**os.environ, "ANSIBLE_LIBRARY": str(LIBRARY), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
           "ANSIBLE_NOCOLOR": "true"}
    r = subprocess.run([str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", "dodas_service",
                        "-a", json.dumps(args)], env=env, capture_output=True, text=True, timeout=120)
    return json.loads(r.stdout.split("=> ", 1)[1])


def test_stopping_a_service_spares_an_unrelated_group_and_stops_its_own_leftovers(tmp_path, unrelated):
    machine = tmp_path / "machine"
    sdir = machine / "app" / "services"
    sdir.mkdir(parents=True)
    # the service: a group whose leader died (kill -9) and left a child running, as a
    # Spark worker leaves its executors; the child carries the machine's marker
    env = {**os.environ, "DODAS_MACHINE": str(machine)}
    # start times are clock ticks (10 ms): the service must not share the unrelated
    # program's tick, or the record below would truly describe that program
    wait_for(lambda: _uptime_ticks() > int(_ticks(unrelated.pid)) + 1, timeout=10)
    svc = subprocess.Popen(["sh", "-c", "sleep 600 & wait"], env=env, start_new_session=True)
    wait_for(lambda: _children(svc.pid), timeout=10)
    leftover, start = _children(svc.pid)[0], _ticks(svc.pid)
    assert start != _ticks(unrelated.pid)
    svc.kill()
    svc.wait()
    args = {"name": "app", "instance_dir": str(machine / "app"), "state": "stopped"}

    # its record names a pid (and group) now held by an unrelated program: nothing of it is signalled
    (sdir / "app.json").write_text(json.dumps({"pid": unrelated.pid, "pgid": unrelated.pid, "start": start}))
    res = run_module(args)
    assert not res.get("failed"), res
    assert res["changed"] is False, "the recorded service is not running"
    time.sleep(0.5)
    assert unrelated.poll() is None and all(_running(c) for c in _children(unrelated.pid)), \
        "an unrelated process group must not be signalled"
    assert _running(leftover), "(not this record's group)"

    # its true record: the leader is gone, so only marked members of its group are stopped
    (sdir / "app.json").write_text(json.dumps({"pid": svc.pid, "pgid": svc.pid, "start": start}))
    res = run_module(args)
    assert not res.get("failed"), res
    wait_for(lambda: not _running(leftover), timeout=10)
    assert unrelated.poll() is None and _children(unrelated.pid)
    assert not (sdir / "app.json").exists()


def test_started_service_records_its_start_time(tmp_path):
    machine = tmp_path / "machine"
    args = {"name": "app", "instance_dir": str(machine / "app"), "command": ["sleep", "600"], "timeout": 10}
    res = run_module(args)
    try:
        assert res["changed"] and res["start"] == _ticks(res["pid"])
        record = json.loads((machine / "app" / "services" / "app.json").read_text())
        assert (record["pid"], record["pgid"], record["start"]) == (res["pid"], res["pid"], res["start"])
        again = run_module(args)
        assert not again["changed"] and again["start"] == res["start"]
    finally:
        run_module({**args, "state": "stopped"})
    assert not _running(res["pid"])


# -- the whole path: dodas status, up and destroy on the local provider --------------
def test_recycled_service_pid_is_dead_for_status_and_up_and_never_signalled(d, tmp_path, unrelated):
    t = service_template(tmp_path, SLEEPER)
    d.run("up", t, "--name", "re")
    dep_id = d.json("status", "re")["id"]
    svc = service(d, "re")
    assert svc["alive"] is True
    os.kill(svc["pid"], signal.SIGKILL)
    wait_for(lambda: not _running(svc["pid"]), timeout=10)
    rewrite_service(d.home, dep_id, pid=unrelated.pid, pgid=unrelated.pid)  # the kernel reused the pid

    r = d.run("status", "re", "--json", check=False)
    st = json.loads(r.stdout)
    assert r.returncode == 5, "a dead service makes status exit 5"
    assert st["degraded"] == {"app[0]": ["app"]}
    assert service(d, "re")["alive"] is False, "a recycled pid is not the service"

    d.run("up", t, "--name", "re")
    assert "a service of this instance is not running" in d.run("logs", "re").stdout
    new = service(d, "re")
    assert new["alive"] is True and new["pid"] != unrelated.pid
    assert unrelated.poll() is None and _children(unrelated.pid), "reconciling must not signal the recycled pid"

    # and once more for destroy: its stop play and the machine's deletion
    os.kill(new["pid"], signal.SIGKILL)
    wait_for(lambda: not _running(new["pid"]), timeout=10)
    rewrite_service(d.home, dep_id, pid=unrelated.pid, pgid=unrelated.pid)
    d.run("destroy", "re", "--yes")
    time.sleep(0.3)
    assert unrelated.poll() is None and _children(unrelated.pid), "destroy must not signal the recycled pid"
    assert processes_of(d.home) == {}


def test_killed_service_makes_status_degraded_without_writing(d, tmp_path):
    t = service_template(tmp_path, SLEEPER)
    d.run("up", t, "--name", "deg")
    assert d.run("status", "deg").returncode == 0
    pid = service(d, "deg")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _running(pid), timeout=10)
    before = db_rows(d.home)
    r = d.run("status", "deg", check=False)
    assert r.returncode == 5
    assert "deg: CREATE_COMPLETE on local, DEGRADED" in r.stdout
    assert "dead: app of app[0]" in r.stdout and f"pid {pid:<8} DEAD" in r.stdout
    r = d.run("status", "deg", "--json", check=False)
    assert r.returncode == 5 and json.loads(r.stdout)["degraded"] == {"app[0]": ["app"]}
    assert db_rows(d.home) == before, "status must not write to the database"
    d.run("up", t, "--name", "deg")
    assert d.run("status", "deg").returncode == 0, "restarted by up: healthy again"
    d.run("destroy", "deg", "--yes")


def test_port_taken_by_another_program_fails_the_start_clearly(d, tmp_path):
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        t = service_template(tmp_path, f"""
            - name: Start the application
              dodas_service:
                name: app
                instance_dir: "{{{{ dodas_instance_dir }}}}"
                command: [sleep, "600"]
                secret_env: {{APP_TOKEN: not-to-be-printed-0451}}
                ports: [{port}]
                wait_host: "{{{{ dodas_address }}}}"
                timeout: 30
              register: app
            """)
        r = d.run("up", t, "--name", "port", check=False)
        assert r.returncode == 1
        assert re.search(rf"app cannot start: port {port} on 127\.77\.\d+\.\d+ is already in use by another "
                         rf"program \(pid {os.getpid()} \(\w+\)\); stop that program or change the port", r.stderr), \
            r.stderr
        assert "Traceback" not in r.stderr
        assert "not-to-be-printed-0451" not in r.stdout + r.stderr + d.run("logs", "port").stdout
        assert processes_of(d.home) == {}, "nothing was started"
    finally:
        listener.close()
    d.run("destroy", "port", "--yes")


def test_a_port_held_through_an_ipv6_socket_is_seen_as_held():
    """Java listens on IPv6 sockets: 127.0.0.1:P shows in /proc/net/tcp6 as
    ::ffff:127.0.0.1. The service module must see that port as held by a listener
    (not as the lingering connections of a service just stopped, which it lets
    pass)."""
    import importlib.util

    from dodas import paths

    spec = importlib.util.spec_from_file_location("dodas_service_module",
                                                  paths.PLAYBOOKS_DIR / "library" / "dodas_service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("::ffff:127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        assert module._listening_inodes("127.0.0.1", port), "the listener is found"
        assert [p for p in module._ports_taken("127.0.0.1", [port]) if "already in use" in p]
    finally:
        s.close()


def _lock_waiters(path: Path) -> int:
    """How many processes wait for a flock on `path` (blocked entries of /proc/locks)."""
    ino = path.stat().st_ino
    return sum(1 for line in Path("/proc/locks").read_text().splitlines()
               if "->" in line and "FLOCK" in line and line.split()[-3].endswith(f":{ino}"))


def test_a_second_start_waits_for_the_first_and_keeps_its_service(tmp_path):
    """Two runs reaching one service at once (a killed dodas's module still running
    on the host, and the next `up`): the second waits on the service's lock and then
    keeps what the first started, instead of starting a second one."""
    import fcntl

    machine = tmp_path / "machine"
    sdir = machine / "app" / "services"
    sdir.mkdir(parents=True)
    lock = sdir / "app.lock"
    args = {"name": "app", "instance_dir": str(machine / "app"), "command": ["sleep", "600"], "timeout": 10}
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the first run, in the middle of starting it
    first = None
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(run_module, args)
        try:
            wait_for(lambda: _lock_waiters(lock) == 1, timeout=120)
            assert not (sdir / "app.json").exists(), "nothing started while the lock is held"
            first = subprocess.Popen(["sleep", "600"], start_new_session=True,
                                     env={**os.environ, "DODAS_MACHINE": str(machine)})
            (sdir / "app.json").write_text(json.dumps({"pid": first.pid, "pgid": first.pid,
                                                       "start": _ticks(first.pid)}))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        res = second.result()
    try:
        assert not res.get("failed"), res
        assert res["changed"] is False and res["pid"] == first.pid, "the first run's service is kept"
    finally:
        if first is not None:
            first.kill()
            first.wait()
