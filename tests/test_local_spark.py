"""The main job, for real: `dodas up templates/spark-jupyter.yaml` on this machine,
then a PySpark job and a notebook cell against it, reconciliation, scaling, a dead
service, and a destroy that leaves no process behind (checked in /proc)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from livecluster import (ROOT, Dodas, count_services, kill_leftovers, need_java, processes_of, run_notebook_cell,
                         wait_for)

TEMPLATE = str(ROOT / "templates" / "spark-jupyter.yaml")
NAME = "spark"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    need_java()
    d = Dodas(tmp_path_factory.mktemp("home"))
    d.run("up", TEMPLATE, "--name", NAME)
    yield d
    d.run("destroy", NAME, "--yes", check=False)
    kill_leftovers(d.home)


def master_json(d: Dodas) -> dict:
    url = d.outputs(NAME)["spark_ui_url"]
    with urllib.request.urlopen(url + "/json/", timeout=10) as resp:
        return json.load(resp)


def alive_workers(d: Dodas) -> list[dict]:
    return [w for w in master_json(d)["workers"] if w["state"] == "ALIVE"]


def test_up_is_verified_ready(cluster):
    outs = cluster.outputs(NAME)
    assert outs["spark_master_url"].startswith("spark://127.77.")
    assert outs["jupyter_url"].endswith(":8888/lab")
    assert outs["jupyter_token"] == "********"
    st = cluster.json("status", NAME)
    assert st["status"] == "CREATE_COMPLETE"
    assert {i["state"] for i in st["instances"]} <= {"created", "started"}
    services = [s for i in st["instances"] for s in (i.get("services") or {}).values()]
    assert len(services) == 4 and all(s["alive"] for s in services)
    workers = alive_workers(cluster)
    assert len(workers) == 2
    # the hosts' num_cpus / mem_size became the workers' limits
    assert {(w["cores"], w["memory"]) for w in workers} == {(1, 1024)}
    assert count_services(cluster.home) == {"master": 1, "worker": 2, "jupyter": 1}


def test_pyspark_job(cluster):
    master = cluster.outputs(NAME)["spark_master_url"]
    code = (
        "from pyspark.sql import SparkSession\n"
        f"s = SparkSession.builder.master('{master}').appName('hello')"
        ".config('spark.driver.host', '127.0.0.1').config('spark.executor.memory', '512m').getOrCreate()\n"
        "print('RESULT', s.range(1000).count(), s.sparkContext.parallelize(range(100), 4).map(lambda x: x * x).sum())\n"
        "s.stop()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RESULT 1000 328350" in r.stdout


def test_notebook_cell(cluster):
    outs = cluster.outputs(NAME, secrets=True)
    base = outs["jupyter_url"].removesuffix("/lab")
    printed = run_notebook_cell(base, outs["jupyter_token"],
                                "print(spark.range(1000).count(), spark.sparkContext.master)")
    count, master = printed.split()
    assert count == "1000"
    assert master == outs["spark_master_url"]


def test_token_is_never_shown_or_logged(cluster):
    token = cluster.outputs(NAME, secrets=True)["jupyter_token"]
    assert len(token) >= 32
    for args in (["status", NAME, "--json"], ["logs", NAME], ["outputs", NAME], ["list"]):
        r = cluster.run(*args)
        assert token not in r.stdout + r.stderr, args
    for cmd in processes_of(cluster.home).values():
        assert token not in cmd, "the token must not be on a command line (ps shows those)"
    # no file dodas writes holds it, except the state database (mode 0600)
    db = cluster.home / "data" / "state.db"
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    for path in cluster.home.rglob("*"):
        if path.is_file() and not path.name.startswith("state.db") and "runtime" not in path.parts:
            assert token.encode() not in path.read_bytes(), path


def test_up_again_changes_nothing(cluster):
    before = cluster.json("status", NAME)
    r = cluster.run("up", TEMPLATE, "--name", NAME)
    assert "nothing to change" in r.stdout
    after = cluster.json("status", NAME)
    pids = lambda st: sorted(s["pid"] for i in st["instances"] for s in (i.get("services") or {}).values())  # noqa: E731
    assert pids(before) == pids(after)


def test_dead_service_is_started_again(cluster):
    st = cluster.json("status", NAME)
    worker = next(i for i in st["instances"] if i["id"] == "spark_worker[1]")
    pgid = worker["services"]["spark-worker"]["pgid"]
    os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: not any(i["id"] == "spark_worker[1]" and i["services"]["spark-worker"]["alive"]
                             for i in cluster.json("status", NAME)["instances"]))
    r = cluster.run("up", TEMPLATE, "--name", NAME)
    assert "nothing to change" not in r.stdout
    wait_for(lambda: len(alive_workers(cluster)) == 2, timeout=60)
    assert count_services(cluster.home)["worker"] == 2


def test_scale_up_then_down(cluster):
    cluster.run("up", TEMPLATE, "--name", NAME, "-i", "number_of_workers=3")
    assert len(alive_workers(cluster)) == 3
    assert count_services(cluster.home) == {"master": 1, "worker": 3, "jupyter": 1}
    cluster.run("up", TEMPLATE, "--name", NAME, "-i", "number_of_workers=1")
    wait_for(lambda: len(alive_workers(cluster)) == 1, timeout=60)
    assert count_services(cluster.home) == {"master": 1, "worker": 1, "jupyter": 1}
    ids = {i["id"] for i in cluster.json("status", NAME)["instances"]}
    assert "worker_hosts[1]" not in ids and "spark_worker[2]" not in ids
    # the input is kept: a plain `up` does not scale back
    r = cluster.run("up", TEMPLATE, "--name", NAME)
    assert "nothing to change" in r.stdout


def test_destroy_leaves_nothing(cluster):
    dep_id = cluster.json("status", NAME)["id"]
    cluster.run("destroy", NAME, "--yes")
    assert processes_of(cluster.home) == {}, "no process of the deployment may survive destroy"
    assert not (cluster.home / "data" / "local" / dep_id).exists()
    assert cluster.json("status", NAME)["status"] == "DELETE_COMPLETE"
    assert cluster.json("status", NAME)["instances"] == []
    cluster.run("destroy", NAME, "--yes")  # safe to repeat
