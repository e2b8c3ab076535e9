"""An autoscaler killed (SIGKILL) at each step of a scale-down, for real: the
elastic Spark template on the local provider with two workers, the idle one
removed by `dodas autoscale NAME` in the foreground, which is killed

- once the removal is decided (told and stored, nothing done yet),
- once the worker is decommissioned at the Spark master (the deployment unchanged),
- while the removal's deploy runs (the deployment UPDATE_IN_PROGRESS),
- once that deploy finished (before the loop saved anything after it).

Each time an autoscaler started afterwards (once the dead one's lease ran out)
ends with one worker in the deployment and one alive at the master, none
stranded (decommissioned but kept, or removed but still registered), `status`
not degraded, and the removal told once in the deployment's log.

The first, second and fourth steps are reached through the loop's pause points
(services/autoscale.pause_at, DODAS_AUTOSCALE_PAUSE); the third is watched for
in the state database, as a user would see it in `status`."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request

import pytest
from support.livecluster import DODAS, Dodas, kill_leftovers, need_java
from support.autoscaler import kill_while_deploying
from support.spark import ELASTIC, NAME, TIMEOUT_S
from support.waiting import wait_until

#: the hang guard, above what the test needs on a busy machine: a Spark up, four scale-ups and removals, a destroy
pytestmark = pytest.mark.timeout(3600)

STEPS = ("decided", "drained", "deploying", "done")


@pytest.fixture()
def cluster(tmp_path):
    need_java()
    d = Dodas(tmp_path / "home")
    d.run("up", ELASTIC, "--name", NAME, "-i", "idle_time=8", "-i", "max_workers=2", "-i", "cooldown=2", "--yes",
          "--quiet", timeout=900)
    yield d
    d.run("destroy", NAME, "--yes", "--quiet", check=False, timeout=600)
    kill_leftovers(d.home)


class Autoscaler:
    """`dodas autoscale NAME --json` as a process, its output read as it comes."""

    def __init__(self, d: Dodas, pause: str | None = None) -> None:
        env = {**d.env, "DODAS_AUTOSCALE_PAUSE": pause} if pause else d.env
        self.proc = subprocess.Popen([*DODAS, "autoscale", NAME, "--json"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def said(self, text: str) -> bool:
        assert self.proc.poll() is None or any(text in x for x in self.err), "".join(self.err)[-3000:]
        return any(text in x for x in self.err + self.out)


def holds(d: Dodas, a: Autoscaler) -> bool:
    """Whether that process holds the deployment's autoscaler ("host:PID:start#autoscale")."""
    who = (status(d)[1].get("elastic") or {}).get("autoscaler") or ""
    return f":{a.proc.pid}:" in who


def status(d: Dodas) -> tuple[int, dict]:
    r = d.run("status", NAME, "--json", check=False)
    assert r.returncode in (0, 5), r.stderr
    return r.returncode, json.loads(r.stdout)


def alive_at_master(d: Dodas) -> list[str]:
    with urllib.request.urlopen(d.outputs(NAME)["spark_ui_url"] + "/json/", timeout=10) as r:
        return sorted(w["host"] for w in json.load(r)["workers"] if w["state"] == "ALIVE")


def removals_told(d: Dodas) -> list[str]:
    events = [json.loads(x) for x in d.run("logs", NAME, "--json").stdout.splitlines() if x.strip()]
    return [e["message"] for e in events if e.get("phase") == "autoscale" and "removing" in e["message"]]


def settled(d: Dodas) -> bool:
    """One worker in the deployment and alive at the master, each worker's state a working one."""
    code, st = status(d)
    workers = [i for i in st["instances"] if i["node"] == "worker_hosts"]
    nodes = (st.get("elastic") or {}).get("nodes") or []
    return (code == 0 and len(workers) == 1 and st["status"] == "UPDATE_COMPLETE" and len(alive_at_master(d)) == 1
            and [n["state"] for n in nodes] in (["idle"], ["used"]))


def test_a_scale_down_killed_at_each_step_ends_with_the_right_count(cluster):
    d = cluster
    for step in STEPS:
        d.run("scale", NAME, "worker_hosts", "2", "--yes", "--quiet", timeout=900)
        wait_until(lambda: len(alive_at_master(d)) == 2, "two workers alive at the master", timeout=TIMEOUT_S,
                   every=1.0)
        told_before = len(removals_told(d))
        first = Autoscaler(d, pause=None if step == "deploying" else step)
        try:
            if step == "deploying":
                wait_until(lambda: first.said('"remove"'), "the removal decided", timeout=TIMEOUT_S, every=0.05)
                kill_while_deploying(first, d.home, NAME, None, TIMEOUT_S, removing=("worker_hosts", 2))
            else:
                wait_until(lambda: first.said(f"paused at {step}"), f"the autoscaler at {step}", timeout=TIMEOUT_S,
                           every=0.1)
        finally:
            first.proc.send_signal(signal.SIGKILL)
            assert first.proc.wait(timeout=60) == -signal.SIGKILL
        # the dead one's lease runs out; then another takes over and finishes
        deadline = time.monotonic() + 600  # only tells never from slow
        while True:
            again = Autoscaler(d)
            wait_until(lambda: again.proc.poll() is not None or holds(d, again), "its lease or its refusal",
                       timeout=TIMEOUT_S)
            if again.proc.poll() is None:
                break
            assert any("autoscaled by" in x for x in again.err) and time.monotonic() < deadline, again.err
            time.sleep(2.0)
        try:
            wait_until(lambda: settled(d), f"one working worker after a kill at {step} ({again.out[-5:]})",
                       timeout=TIMEOUT_S, every=1.0)
            told = removals_told(d)[told_before:]
            assert len(told) == 1, (step, told)
        finally:
            again.proc.send_signal(signal.SIGINT)
            assert again.proc.wait(timeout=120) == 0, "".join(again.err)[-3000:]
        assert d.run("plan", NAME, "--detailed-exitcode", check=False).returncode == 0, "status and plan agree"
