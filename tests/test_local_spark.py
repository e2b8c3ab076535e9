"""The main job, for real: `dodas up templates/spark-jupyter.yaml` on this machine,
then a PySpark job and a notebook cell against it, reconciliation, scaling, a dead
service, and a destroy that leaves no process behind (checked in /proc).

dodas runs here with (fake) cloud credentials, a state URL and tokens in its
environment, as an operator's shell has them: none may reach a service, a kernel
or a job. The cluster is authenticated: clients without its secret are refused,
through the master's port and through the (absent) REST submission port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.livecluster import (Dodas, count_services, driver_is_refused, environ_of, kill_leftovers, need_java,
                                 processes_of, run_notebook_cell, wait_for)
from support.paths import ROOT
from support.spark import spark_client_env

#: the hang guard, above what a test here needs on a busy machine: Spark deployed for real, jobs run on it
pytestmark = pytest.mark.timeout(1800)

TEMPLATE = str(ROOT / "templates" / "spark-jupyter.yaml")
NAME = "spark"
#: what an operator's environment holds and no service may see
FAKE_SECRETS = {"AWS_ACCESS_KEY_ID": "AKIAFAKEOPERATORKEY1", "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-0p3r4t0r",
                "OS_PASSWORD": "fake-openstack-password-9x", "OS_APPLICATION_CREDENTIAL_SECRET": "fake-os-appcred-7y",
                "GITHUB_TOKEN": "ghp_fakeoperatortoken123", "IAM_ACCESS_TOKEN": "fake-iam-access-token-5z"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    need_java()
    d = Dodas(tmp_path_factory.mktemp("home"))
    d.env.update(FAKE_SECRETS)
    d.env["DODAS_DB_URL"] = f"sqlite:///{d.home}/data/state.db"  # dodas's own setting, for dodas only
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


def test_pyspark_job_with_the_secret_from_spark_conf(cluster, tmp_path):
    """An external client: `dodas spark-conf` gives it the master URL and the secret
    in a file; nothing secret is on its command line."""
    conf = tmp_path / "conf"
    cluster.run("spark-conf", NAME, "-o", str(conf))
    assert oct((conf / "spark-defaults.conf").stat().st_mode & 0o777) == "0o600"
    assert oct(conf.stat().st_mode & 0o777) == "0o700"
    code = (
        "from pyspark.sql import SparkSession\n"
        "s = SparkSession.builder.appName('hello')"
        ".config('spark.driver.host', '127.0.0.1').config('spark.executor.memory', '512m').getOrCreate()\n"
        "print('RESULT', s.range(1000).count(), s.sparkContext.parallelize(range(100), 4).map(lambda x: x * x).sum())\n"
        "s.stop()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env=spark_client_env(conf))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RESULT 1000 328350" in r.stdout
    out = cluster.run("outputs", NAME).stdout
    assert f"dodas spark-conf {NAME} -o DIR" in out and "SPARK_CONF_DIR=DIR" in out


def _master(cluster) -> tuple[str, int]:
    host, port = cluster.outputs(NAME)["spark_master_url"].removeprefix("spark://").rsplit(":", 1)
    return host, int(port)


def test_no_rest_submission_server(cluster):
    host, _ = _master(cluster)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, 6066), timeout=10).close()
    body = json.dumps({"action": "CreateSubmissionRequest", "appResource": "file:/bin/true", "mainClass": "x",
                       "clientSparkVersion": "4.0.0", "appArgs": [], "environmentVariables": {},
                       "sparkProperties": {"spark.master": f"spark://{host}:6066"}}).encode()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urllib.request.Request(f"http://{host}:6066/v1/submissions/create", data=body,
                                                      headers={"Content-Type": "application/json"}), timeout=10)


def test_a_driver_without_the_secret_is_refused(cluster, tmp_path):
    """`spark-submit --deploy-mode cluster` talks to the master's port (7077): without
    the secret, or with a wrong one, the master refuses to talk at all."""
    import pyspark

    host, port = _master(cluster)
    jar = next((Path(pyspark.__file__).parent / "jars").glob("spark-core_*.jar"))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "spark-defaults.conf").write_text("spark.authenticate true\nspark.authenticate.secret not-the-secret\n")
    for conf in (None, wrong):
        r = subprocess.run([str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--master",
                            f"spark://{host}:{port}", "--deploy-mode", "cluster", "--class", "org.example.Intruder",
                            str(jar)], capture_output=True, text=True, timeout=300, env=spark_client_env(conf))
        assert r.returncode != 0
        if conf is None:  # a client without authentication is told why; one with a wrong secret is cut off
            assert "SaslMessage" in r.stderr, r.stderr[-2000:]
    state = master_json(cluster)
    assert state.get("activedrivers") == [] and state.get("completeddrivers") == []


def test_an_application_without_the_secret_cannot_register(cluster):
    host, port = _master(cluster)
    driver_is_refused(f"spark://{host}:{port}")
    apps = master_json(cluster)
    assert not [a for a in apps["activeapps"] + apps["completedapps"] if a["name"] == "intruder"]


def test_a_worker_without_the_secret_cannot_join(cluster, tmp_path):
    import pyspark

    host, port = _master(cluster)
    env = {**spark_client_env(), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp_path),
           "SPARK_WORKER_DIR": str(tmp_path)}
    proc = subprocess.Popen([str(Path(pyspark.__file__).parent / "bin" / "spark-class"),
                             "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port", "0",
                             "--cores", "1", "--memory", "512m", f"spark://{host}:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        seen = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "SaslMessage" in line or "Failed to connect to master" in line or not line:
                break
        assert any("SaslMessage" in x or "Failed to connect to master" in x for x in seen), "".join(seen)[-3000:]
        assert "127.0.0.1" not in {w["host"] for w in master_json(cluster)["workers"]}
    finally:
        proc.kill()
        proc.wait()


def test_the_secret_is_on_no_command_line_and_in_private_files(cluster):
    secret = cluster.outputs(NAME, secrets=True)["spark_secret"]
    assert len(secret) >= 32
    for cmd in processes_of(cluster.home).values():
        assert secret not in cmd
    confs = list(cluster.home.rglob("spark-defaults.conf"))
    assert len(confs) == 4  # master, two workers, the notebooks' driver
    for conf in confs:
        assert secret in conf.read_text()
        assert oct(conf.stat().st_mode & 0o777) == "0o600"
        assert oct(conf.parent.stat().st_mode & 0o777) == "0o700"


def test_the_web_uis_cannot_kill(cluster):
    ui = cluster.outputs(NAME)["spark_ui_url"]
    req = urllib.request.Request(f"{ui}/app/kill/?id=app-1&terminate=true", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code in (404, 405)


def test_services_start_with_an_explicit_environment(cluster):
    """Every process of the deployment (services, and what they started) has none
    of the operator's environment: no credentials, no state URL, no tokens."""
    procs_ = processes_of(cluster.home)
    assert len(procs_) >= 4
    for pid, cmd in procs_.items():
        env = environ_of(pid)
        assert not {"DODAS_DB_URL", "DODAS_HOME", *FAKE_SECRETS} & set(env), (cmd[:80], sorted(env))
        for value in FAKE_SECRETS.values():
            assert value not in "\0".join(env.values()), cmd[:80]
        if "-m jupyterlab" not in cmd:
            assert "JUPYTER_TOKEN" not in env, cmd[:80]


def test_a_notebook_kernel_sees_no_secret_of_the_operator_nor_the_token(cluster):
    outs = cluster.outputs(NAME, secrets=True)
    base = outs["jupyter_url"].removesuffix("/lab")
    printed = run_notebook_cell(base, outs["jupyter_token"], "import os, json; print(json.dumps(dict(os.environ)))")
    env = json.loads(printed)
    assert "JUPYTER_TOKEN" not in env
    assert outs["jupyter_token"] not in printed
    assert not {"DODAS_DB_URL", *FAKE_SECRETS} & set(env)
    for value in FAKE_SECRETS.values():
        assert value not in printed


def test_daemons_listen_on_their_own_address_only(cluster):
    """Spark's master, workers, their web UIs and JupyterLab listen on their
    instance's address, never on every address (0.0.0.0) nor another one. (Notebook
    kernels and PySpark's gateway listen on 127.0.0.1, each guarded by a key in a
    file only the operator can read.)"""
    import psutil

    st = cluster.json("status", NAME)
    addresses = {i["address"] for i in st["instances"] if i.get("address")}
    checked = 0
    for pid, cmd in processes_of(cluster.home).items():
        if not any(k in cmd for k in ("deploy.master.Master", "deploy.worker.Worker", "-m jupyterlab")):
            continue
        for c in psutil.Process(pid).net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                checked += 1
                assert c.laddr.ip.removeprefix("::ffff:") in addresses, (cmd[:60], c.laddr)
    assert checked >= 6  # the master's 2 ports, each worker's RPC and UI, JupyterLab


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

    def degraded() -> bool:
        r = cluster.run("status", NAME, "--json", check=False)
        return r.returncode == 5 and "spark_worker[1]" in json.loads(r.stdout)["degraded"]
    wait_for(degraded)
    r = cluster.run("up", TEMPLATE, "--name", NAME)
    assert "nothing to change" not in r.stdout
    wait_for(lambda: len(alive_workers(cluster)) == 2, timeout=60)
    assert count_services(cluster.home)["worker"] == 2


def test_scale_up_then_down(cluster):
    cluster.run("up", TEMPLATE, "--name", NAME, "-i", "number_of_workers=3")
    assert len(alive_workers(cluster)) == 3
    assert count_services(cluster.home) == {"master": 1, "worker": 3, "jupyter": 1}
    cluster.run("up", TEMPLATE, "--name", NAME, "-i", "number_of_workers=1", "--yes")  # it deletes: asked
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
