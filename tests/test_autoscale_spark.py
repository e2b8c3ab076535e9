"""Elasticity for real: the elastic Spark + Jupyter template on the local
provider, its autoscaler run in the foreground (`dodas autoscale NAME`), and a
PySpark application asking for more cores than the cluster has. A worker is
added and registers ALIVE, the application's executors start on it, the
application's result is right; once it ended and the idle time passed, the
extra worker is decommissioned and removed, and no executor was lost. The
decisions are events with their reasons, shown by `status`. An autoscaler
killed and started again continues from the state without a duplicate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
from support.autoscaler import Autoscaler, kill_while_deploying
from support.livecluster import Dodas, kill_leftovers, need_java
from support.spark import APP, ELASTIC, NAME, TIMEOUT_S, spark_client_env

#: the hang guard, above what a test here needs on a busy machine: a Spark up, the autoscaler's rounds and a destroy
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture()
def cluster(tmp_path):
    need_java()
    d = Dodas(tmp_path / "home")
    d.run("up", ELASTIC, "--name", NAME, "-i", "idle_time=8", "-i", "max_workers=2", "-i", "cooldown=2", "--yes",
          timeout=900)
    yield d
    d.run("destroy", NAME, "--yes", check=False, timeout=600)
    kill_leftovers(d.home)


def master_state(d: Dodas) -> dict:
    with urllib.request.urlopen(d.outputs(NAME)["spark_ui_url"] + "/json/", timeout=10) as r:
        return json.load(r)


def status(d: Dodas) -> dict:
    """`status --json`, also while degraded (exit 5): a decommissioned worker's
    process has ended before its instance is removed."""
    r = d.run("status", NAME, "--json", check=False)
    assert r.returncode in (0, 5), r.stderr
    return json.loads(r.stdout)


def workers_of(d: Dodas) -> list[str]:
    return [i["id"] for i in status(d)["instances"] if i["node"] == "worker_hosts"]


def test_a_waiting_application_gets_a_worker_which_goes_when_idle(cluster, tmp_path):
    d = cluster
    assert workers_of(d) == ["worker_hosts[0]"]
    conf = tmp_path / "conf"
    d.run("spark-conf", NAME, "-o", str(conf))
    scaler = Autoscaler(d, NAME, TIMEOUT_S)
    code = APP
    app = subprocess.Popen([sys.executable, "-c", code], env=spark_client_env(conf), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        added = scaler.wait_for("add")
        assert added["count"] == 2 and "waiting" in added["reason"], added
        out, err = app.communicate(timeout=600)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0, err[-3000:]
    assert "EXECUTORS 2" in out, "the application got an executor on the new worker"
    assert "RESULT 332833500" in out
    assert "Lost executor" not in err, "no executor was lost"
    alive = [w for w in master_state(d)["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2 and workers_of(d) == ["worker_hosts[0]", "worker_hosts[1]"]

    removed = scaler.wait_for("remove")
    # the one idle longest goes (the highest index among equals), by name: the other keeps its index
    assert removed["count"] == 1 and len(removed["remove"]) == 1, removed
    assert "idle" in removed["reason"]
    (kept,) = {"worker_hosts[0]", "worker_hosts[1]"} - set(removed["remove"])
    deadline = time.monotonic() + TIMEOUT_S
    while workers_of(d) != [kept]:
        assert time.monotonic() < deadline, workers_of(d)
        time.sleep(0.5)
    states = {w["host"]: w["state"] for w in master_state(d)["workers"]}
    assert "DECOMMISSIONED" in states.values() or "DEAD" in states.values(), states
    assert scaler.stop() == 0, "Ctrl-C stops it cleanly"

    st = status(d)
    assert st["elastic"]["current"] == 1 and st["elastic"]["max"] == 2 and st["elastic"]["autoscaler"] is None
    reasons = [x["reason"] for x in st["elastic"]["decisions"]]
    # status shows the latest decisions only: the removal is among them; the addition,
    # which more polls may have pushed out of that window on a busy machine, is in the log below
    assert any("removing" in r for r in reasons), reasons
    human = d.run("status", NAME).stdout
    assert "elastic: worker_hosts 1 (min 1, max 2), watching spark" in human
    logs = d.run("logs", NAME).stdout
    assert added["reason"] in logs and removed["reason"] in logs


def test_two_autoscalers_never_act_at_once_and_one_killed_mid_scale_is_resumed(cluster, tmp_path):
    d = cluster
    first = Autoscaler(d, NAME, TIMEOUT_S)
    deadline = time.monotonic() + 600  # only tells never from slow
    while not first.decisions:  # its first poll is made (and said)
        assert time.monotonic() < deadline and first.proc.poll() is None, first.proc.stderr.read()
        time.sleep(0.2)
    second = d.run("autoscale", NAME, "--once", check=False, timeout=120)
    assert second.returncode != 0 and "autoscaled by" in second.stderr, second.stderr

    conf = tmp_path / "conf"
    d.run("spark-conf", NAME, "-o", str(conf))
    app = subprocess.Popen([sys.executable, "-c", APP], env=spark_client_env(conf), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        first.wait_for("add")
        # killed while its deploy makes the new worker (looked at with the autoscaler stopped: a kill
        # after a `status` that said UPDATE_IN_PROGRESS could land once the deploy ended, on a busy machine)
        kill_while_deploying(first, d.home, NAME, "worker_hosts[1]", TIMEOUT_S)
        # the dead one's lease expires; then another takes over and finishes the scale-up
        deadline = time.monotonic() + 600  # only tells never from slow
        while True:
            again = Autoscaler(d, NAME, TIMEOUT_S)
            while not again.decisions and again.proc.poll() is None:
                time.sleep(0.2)
            if again.decisions:
                break
            assert "autoscaled by" in again.proc.stderr.read() and time.monotonic() < deadline
            time.sleep(2.0)
        out, err = app.communicate(timeout=600)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0 and "EXECUTORS 2" in out and "RESULT 332833500" in out, err[-3000:]
    assert workers_of(d) == ["worker_hosts[0]", "worker_hosts[1]"], "nothing was added twice"
    assert any("finishing the scaling" in x["reason"] for x in again.decisions), again.decisions
    assert again.stop() == 0
