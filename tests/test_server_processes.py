"""`dodas server --processes N` (or `processes:` in server.yaml): N API processes
on one port, sharing nothing but the state database. Each answers reads and
queues work; the deployment's work is done once; one process killed is replaced
while the others answer; stopping the server leaves no process behind."""

from __future__ import annotations

import os
import signal
import time

import psutil

from support.server import TIMEOUT_S, boxes


def api_processes(pid: int) -> list[psutil.Process]:
    """The server's API processes: uvicorn's spawned children of the supervisor
    (not the multiprocessing resource tracker)."""
    out = []
    for p in psutil.Process(pid).children():
        try:
            if "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def until(what: str, check, timeout: float = TIMEOUT_S):
    """Wait for `check()` to answer something true; a hang guard only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def test_several_api_processes_share_the_port_and_the_state(serve):
    server = serve(processes=2)
    procs = until("two API processes", lambda: [ps for ps in [api_processes(server.proc.pid)] if len(ps) == 2])[0]
    alice = server.as_("alice")
    r = alice.create("two", boxes(n=3))
    assert r.status_code == 202, r.text
    done = alice.wait("two")
    assert len([i for i in done["instances"] if i["kind"] == "compute"]) == 3
    # the work was done once, by one worker: three machines, not six
    assert len(server.records(done["id"])) == 3
    for _ in range(40):  # keep-alive off: new connections, spread over the processes by the kernel
        r = alice.get("/api/v1/deployments/two", headers={"Connection": "close"})
        assert r.status_code == 200 and r.json()["status"] == "CREATE_COMPLETE", r.text
    victim = procs[0]
    os.kill(victim.pid, signal.SIGKILL)
    until("the killed process replaced", lambda: victim.pid not in {p.pid for p in api_processes(server.proc.pid)}
          and len(api_processes(server.proc.pid)) == 2)
    until("answers again", lambda: alice.get("/api/v1/deployments/two").status_code == 200)
    everyone = [p.pid for p in api_processes(server.proc.pid)]
    server.stop()
    assert server.proc.returncode is not None
    until("no API process left", lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status()
                                                 != psutil.STATUS_ZOMBIE for pid in everyone))


def test_a_bad_process_count_is_refused_with_the_setting_named(tmp_path):
    import subprocess
    import sys

    from support.server import clean_env

    env = clean_env(tmp_path)
    conf = tmp_path / "server.yaml"
    for value in ("0", "many", "-2"):
        conf.write_text(f"processes: {value}\n")
        r = subprocess.run([sys.executable, "-m", "dodas", "server", "--config", str(conf), "--bind",
                            "127.0.0.1:1"], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and "processes:" in r.stderr and "Traceback" not in r.stderr, r.stderr
