"""The Spark reader against a real standalone master and two 1-core workers, started
with the pyspark wheel's spark-class on loopback addresses of their own (lighter
than a whole `dodas up`): it sees the workers, an application asking for more
cores than are free waits for them, and `drain` decommissions a worker so that
the master gives it no new executor while the application running there loses
nothing and computes the right result.

The cluster runs with `spark.decommission.enabled true` (without it the master
has no /workers/kill endpoint: the reader says so)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.livecluster import need_java, wait_for

from dodas.elastic.readers.spark import SparkError, SparkReader

#: the hang guard, above what a test here needs on a busy machine: a real Spark cluster and its applications
pytestmark = pytest.mark.timeout(1800)

APP = r'''
import sys, time
from pyspark.sql import SparkSession
master, cores_max, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
spark = (SparkSession.builder.master(master).appName(sys.argv[4])
         .config("spark.cores.max", cores_max).config("spark.executor.cores", "1")
         .config("spark.executor.memory", "512m").config("spark.driver.memory", "512m")
         .config("spark.driver.host", master.split("//")[1].split(":")[0]).getOrCreate())
def slow(x):
    import time
    time.sleep(seconds)
    return x * x
print("RESULT", sum(spark.sparkContext.parallelize(range(16), 8).map(slow).collect()), flush=True)
spark.stop()
'''


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, tmp: Path) -> None:
        import pyspark
        from dodas.providers.local import find_java
        net = f"127.79.{random.randint(1, 250)}"
        self.master_host, self.worker_hosts = f"{net}.1", [f"{net}.2", f"{net}.3"]
        self.tmp = tmp
        (tmp / "conf").mkdir()
        (tmp / "conf" / "spark-defaults.conf").write_text(
            "spark.decommission.enabled true\nspark.master.rest.enabled false\nspark.ui.killEnabled false\n")
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPARK_")},
                    "SPARK_HOME": os.path.dirname(pyspark.__file__), "JAVA_HOME": find_java()["home"],
                    "SPARK_CONF_DIR": str(tmp / "conf"), "SPARK_LOG_DIR": str(tmp / "logs"),
                    "SPARK_DAEMON_MEMORY": "256m", "PYSPARK_PYTHON": sys.executable}
        self.procs: list[subprocess.Popen] = []
        self.port = free_port(self.master_host)
        self.ui = f"http://{self.master_host}:{free_port(self.master_host)}"
        self.master_url = f"spark://{self.master_host}:{self.port}"

    def spawn(self, host: str, *args: str, log: str) -> None:
        cmd = [str(Path(self.env["SPARK_HOME"]) / "bin" / "spark-class"), *args]
        out = open(self.tmp / log, "wb")
        self.procs.append(subprocess.Popen(cmd, env={**self.env, "SPARK_LOCAL_IP": host}, stdout=out,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True))

    def start(self) -> None:
        self.spawn(self.master_host, "org.apache.spark.deploy.master.Master", "--host", self.master_host,
                   "--port", str(self.port), "--webui-port", self.ui.rsplit(":", 1)[1], log="master.log")
        wait_for(lambda: self._state(), timeout=300, every=0.5)
        for i, host in enumerate(self.worker_hosts):
            self.spawn(host, "org.apache.spark.deploy.worker.Worker", "--host", host, "--cores", "1",
                       "--memory", "1024m", "--webui-port", str(free_port(host)), "--work-dir",
                       str(self.tmp / f"work{i}"), self.master_url, log=f"worker{i}.log")
        wait_for(lambda: len([w for w in (self._state() or {}).get("workers", [])
                              if w["state"] == "ALIVE"]) == 2, timeout=300, every=0.5)

    def _state(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.ui + "/json/", timeout=5) as r:
                return json.load(r)
        except OSError:
            return None

    def state(self) -> dict:
        return self._state() or {}

    def submit(self, name: str, cores_max: int, seconds: float) -> subprocess.Popen:
        script = self.tmp / "app.py"
        script.write_text(APP)
        env = {**self.env, "SPARK_LOCAL_IP": self.master_host}
        return subprocess.Popen([sys.executable, str(script), self.master_url, str(cores_max), str(seconds), name],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    need_java()
    c = Cluster(tmp_path_factory.mktemp("spark"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def run(coro):
    return asyncio.run(coro)


def test_read_sees_the_workers(cluster):
    w = run(SparkReader(cluster.ui).read())
    assert w.waiting_cores == 0 and w.waiting == ()
    assert sorted(x.host for x in w.workers) == cluster.worker_hosts
    assert all(x.alive and not x.busy and x.cores == 1 and x.cores_used == 0 for x in w.workers)
    assert all(x.idle_since is None for x in w.workers), "never had work: the autoscaler's own clock"


def test_waiting_application_and_graceful_decommission(cluster):
    reader = SparkReader(cluster.ui)
    app = cluster.submit("wide", cores_max=4, seconds=3)
    try:
        # it asks for 4 cores, the cluster has 2: once both are granted, 2 wait
        w = wait_for(lambda: (r := run(reader.read())).waiting_cores == 2
                     and all(x.busy for x in r.workers) and r, timeout=300, every=1)
        assert len(w.waiting) == 1 and 'application "wide"' in w.waiting[0] and "2 cores (2 granted)" in w.waiting[0]

        # decommission the second worker while the application's executor runs tasks there
        victim = next(x for x in w.workers if x.host == cluster.worker_hosts[1])
        assert run(reader.drain(victim)) is False
        entry = next(x for x in cluster.state()["workers"] if x["host"] == victim.host)
        assert entry["state"] == "DECOMMISSIONED"
        assert run(reader.drain(victim)) is False      # idempotent; its executor still runs
        out, _ = app.communicate(timeout=600)
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)
    assert app.returncode == 0, out
    assert "RESULT 1240" in out                        # sum of squares of 0..15
    assert "Lost executor" not in out and "ExecutorLostFailure" not in out, out

    # once the application has ended nothing runs there: drained, though the master still counts a core
    assert wait_for(lambda: run(reader.drain(victim)), timeout=120, every=1)
    w = run(reader.read())
    gone = w.worker_at(victim.host)
    assert gone.state == "DECOMMISSIONED" and not gone.busy and not gone.alive

    # the master gives the decommissioned worker no new executor: a 2-core application gets 1
    submitted = time.time()
    app = cluster.submit("after", cores_max=2, seconds=1)
    try:
        w = wait_for(lambda: (r := run(reader.read())).waiting_cores == 1 and r, timeout=300, every=1)
        assert 'application "after"' in w.waiting[0] and "1 core (1 granted)" in w.waiting[0]
        assert w.worker_at(cluster.worker_hosts[0]).busy and not w.worker_at(victim.host).busy
        out, _ = app.communicate(timeout=600)
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)
    assert "RESULT 1240" in out, out

    # the idle clock from the workload: the worker last had work when "after" ended, in the master's records
    kept = cluster.worker_hosts[0]
    w = wait_for(lambda: (r := run(reader.read())).worker_at(kept).idle_since and r, timeout=120, every=1)
    ended = next(a for a in cluster.state()["completedapps"] if a["name"] == "after")
    assert w.worker_at(kept).idle_since == (ended["starttime"] + ended["duration"]) / 1000
    assert submitted <= w.worker_at(kept).idle_since <= time.time()


def test_drain_of_an_unknown_host_is_done_and_refusals_are_explained(cluster):
    from dodas.elastic.workload import WorkerLoad
    reader = SparkReader(cluster.ui)
    assert run(reader.drain(WorkerLoad("x", "10.255.255.1", False, 1, 0, "ALIVE"))) is True
    with pytest.raises(SparkError, match="cannot read"):
        run(SparkReader(f"http://{cluster.master_host}:{free_port(cluster.master_host)}", timeout=2).read())


def test_a_master_without_decommissioning_says_so():
    import httpx
    state = {"workers": [{"id": "w", "host": "10.0.0.5", "state": "ALIVE", "cores": 1, "coresused": 0}],
             "activeapps": []}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/json/":
            return httpx.Response(200, json=state)
        return httpx.Response(405)   # what a master without spark.decommission.enabled answers (seen for real)

    from dodas.elastic.workload import WorkerLoad
    reader = SparkReader("http://10.0.0.4:8080", transport=httpx.MockTransport(handler))
    with pytest.raises(SparkError, match="spark.decommission.enabled"):
        run(reader.drain(WorkerLoad("w", "10.0.0.5", False, 1, 0, "ALIVE")))


def test_a_new_worker_at_a_removed_ones_address_is_the_one_read():
    """A machine made at the address of one the autoscaler removed: the master lists the old
    worker (DECOMMISSIONED, later DEAD) beside the new ALIVE one, in no set order (seen for
    real: the old entry first made the new worker look drained behind dodas's back, and
    `status` called it lost). The ALIVE entry is the host's worker."""
    import httpx
    state = {"workers": [{"id": "old", "host": "127.77.0.7", "state": "DECOMMISSIONED", "cores": 1, "coresused": 0},
                         {"id": "older", "host": "127.77.0.7", "state": "DEAD", "cores": 1, "coresused": 0},
                         {"id": "new", "host": "127.77.0.7", "state": "ALIVE", "cores": 1, "coresused": 0},
                         {"id": "going", "host": "127.77.0.8", "state": "DECOMMISSIONED", "cores": 1, "coresused": 0},
                         {"id": "gone", "host": "127.77.0.9", "state": "DEAD", "cores": 1, "coresused": 0}],
             "activeapps": [], "completedapps": []}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=state) if request.url.path == "/json/" else httpx.Response(404)

    workers = run(SparkReader("http://127.77.0.2:8080", transport=httpx.MockTransport(handler)).read()).workers
    assert [(w.id, w.host, w.state) for w in workers] == [
        ("new", "127.77.0.7", "ALIVE"), ("going", "127.77.0.8", "DECOMMISSIONED"), ("gone", "127.77.0.9", "DEAD")]
