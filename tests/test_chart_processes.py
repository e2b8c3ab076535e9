"""dodas's Spark + Jupyter chart, its containers run as processes: the commands,
arguments and environment the chart renders (with the values dodas writes) start
a Spark master, two workers and JupyterLab, the chart's `helm test` script passes,
and a notebook cell runs a PySpark job on the workers, logged in with the token
from the chart's Secret. The cluster is authenticated with the secret dodas
generated: a driver without it is refused, kernels see neither it nor the token.
tests/support/podrunner.py says exactly what stands in for the cluster (addresses,
volumes, the image's Spark and Python)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from support.charts import render_spark, spark_values
from support.livecluster import driver_is_refused, need_java, processes_of, run_notebook_cell, wait_for
from support.paths import TEMPLATES
from support.podrunner import PodRunner


def _json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


@pytest.fixture
def pods(tmp_path):
    need_java()
    from dodas.providers.local import find_java
    runner = PodRunner({}, tmp_path, find_java()["home"], net=os.getpid() % 250)
    yield runner
    runner.stop()
    assert processes_of(tmp_path) == {}, "every process of every pod is gone"


def test_chart_containers_run_spark_and_jupyter(helm_bin, tmp_path, pods):
    files = spark_values(tmp_path, TEMPLATES / "spark-helm.yaml", ["spark_workers=2"])
    pods.objects = render_spark(helm_bin, *files, extra=("--set", "workers.memory=1g", "--set",
                                                   "jupyter.executorMemory=512m"))
    master = pods.start("spark-master")
    ui = f"http://{master.ip}:8080/json/"
    wait_for(lambda: _json(ui), timeout=120)
    cmdline = (Path("/proc") / str(master.proc.pid) / "cmdline").read_bytes().split(b"\0")
    assert b"-Dspark.ui.killEnabled=false" in cmdline, "the public UI cannot kill applications"
    assert b"-Dspark.authenticate=true" in cmdline and b"-Dspark.master.rest.enabled=false" in cmdline
    secret = pods._secret("spark-spark", "secret")
    assert len(secret) >= 32 and secret.encode() not in b" ".join(cmdline)
    workers = [pods.start("spark-worker", i) for i in range(2)]
    alive = wait_for(lambda: [w for w in (_json(ui) or {}).get("workers", []) if w["state"] == "ALIVE"]
                     if len([w for w in (_json(ui) or {}).get("workers", []) if w["state"] == "ALIVE"]) == 2
                     else None, timeout=120)
    assert sorted(w["host"] for w in alive) == sorted(w.ip for w in workers), "workers advertise their pod address"
    jupyter = pods.start("spark-jupyter")
    base = f"http://{jupyter.ip}:8888"
    try:
        wait_for(lambda: _json(f"{base}/api"), timeout=120)
    except AssertionError:
        raise AssertionError(pods.logs(jupyter)) from None
    # the chart's own `helm test` script, against these pods
    r = pods.run_pod(("Pod", "spark-test"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Spark master has 2 workers" in r.stdout
    # JupyterLab takes the token dodas generated (through the Secret), and refuses without it
    token = pods._secret("spark-jupyter", "token")
    assert _json(f"{base}/api/kernels") is None
    out = run_notebook_cell(base, token, (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print(spark.sparkContext.master, spark.sparkContext.parallelize(range(1000), 6)"
        ".map(lambda x: x * x).sum())\n"), kernel="python3")
    assert f"spark://{master.ip}:7077 332833500" in out.splitlines(), out
    apps = _json(ui)
    assert any(a["cores"] == 2 for a in apps["activeapps"] + apps["completedapps"]), apps
    assert token not in " ".join(str(p.proc.args) for p in pods.pods), "the token is not on a command line"
    env = run_notebook_cell(base, token, "import os, json; print(json.dumps(dict(os.environ)))", kernel="python3")
    assert "JUPYTER_TOKEN" not in env and token not in env and secret not in env
    # a driver without the secret: the master will not talk to it
    driver_is_refused(f"spark://{master.ip}:7077")
    assert not [a for a in (_json(ui) or {})["activeapps"] if a["name"] == "intruder"]
