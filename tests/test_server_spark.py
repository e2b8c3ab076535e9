"""The main job through the server: the remote CLI deploys the Spark + Jupyter
template with a real `dodas server` (the local provider turned on by the
operator, as only the server's own machine can run it), `dodas logs -f` streams
the deployment's events as it happens, the cluster works (workers ALIVE at the
master), and a remote destroy leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest
from support import serverproc
from support.livecluster import kill_leftovers, need_java, processes_of
from support.paths import ROOT

#: the hang guard, above what a test here needs on a busy machine: Spark deployed through the server
pytestmark = pytest.mark.timeout(1800)

TEMPLATE = str(ROOT / "templates" / "spark-jupyter.yaml")


@pytest.fixture()
def server(tmp_path):
    need_java()
    home = tmp_path / "server-home"
    env = {**os.environ, "DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1", "DODAS_SERVER_ALLOW_LOCAL": "1"}
    env.pop("DODAS_DB_URL", None)
    log = tmp_path / "server.log"
    proc, url = serverproc.start(env, log)
    yield url, home, log
    serverproc.stop(proc)
    kill_leftovers(home)


def test_remote_up_logs_and_destroy_of_the_spark_template(server, tmp_path):
    url, home, log = server
    env = {**os.environ, "DODAS_HOME": str(tmp_path / "laptop"), "DODAS_SERVER": url, "PYTHONUNBUFFERED": "1"}
    env.pop("DODAS_DB_URL", None)

    def dodas(*args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dodas", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, **kw)
    up = dodas("up", TEMPLATE, "--name", "spark", "--yes")
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/api/v1/deployments/spark").status_code == 404:
        assert up.poll() is None and time.monotonic() < deadline, up.communicate()
        time.sleep(0.1)
    follow = dodas("logs", "spark", "-f")
    out, err = up.communicate(timeout=900)
    assert up.returncode == 0, out + err + log.read_text()
    assert "spark_master_url" in out and "********" in out, "up prints the outputs, secrets masked"
    lines = []
    while not any(line.endswith(" deploy   : complete") for line in lines):  # it follows until Ctrl-C
        line = follow.stdout.readline()
        assert line, ("the follower ended", follow.communicate(timeout=120))
        lines.append(line.rstrip("\n"))
    follow.send_signal(signal.SIGINT)
    streamed, ferr = follow.communicate(timeout=120)
    assert follow.returncode == 0, ferr
    lines += streamed.splitlines()
    streamed = "\n".join(lines)
    assert any("complete" in line for line in lines), streamed
    assert len(lines) > 5, "the stream showed the deployment's steps, not only its end"

    st = json.loads(subprocess.run([sys.executable, "-m", "dodas", "status", "spark", "--json"], env=env,
                                   capture_output=True, text=True, check=True).stdout)
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "local"
    outs = json.loads(subprocess.run([sys.executable, "-m", "dodas", "outputs", "spark", "--json"], env=env,
                                     capture_output=True, text=True, check=True).stdout)
    with urllib.request.urlopen(outs["spark_ui_url"]["value"] + "/json/", timeout=10) as resp:
        workers = [w for w in json.load(resp)["workers"] if w["state"] == "ALIVE"]
    assert len(workers) == 2
    assert processes_of(home), "the services run on the server's machine, under its home"

    destroy = dodas("destroy", "spark", "--yes")
    out, err = destroy.communicate(timeout=300)
    assert destroy.returncode == 0, out + err
    deadline = time.monotonic() + 30
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_of(home), processes_of(home)
