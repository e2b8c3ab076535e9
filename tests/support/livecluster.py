"""Helpers for tests that deploy for real: run the `dodas` command, inspect /proc,
talk to Jupyter's kernel API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from support.waiting import wait_until
from support.zygote import run_dodas

DODAS = [sys.executable, "-m", "dodas"]


def compute_template(path: Path, *, count: int, cpus: int, mem: str, node: str = "box",
                     image: str | None = None, public_port: int | None = None,
                     address_output: str | None = None, policies: list | None = None) -> str:
    """A template of one scalable compute node (input `n` is its count): what the
    provider, state and fault tests deploy when no software is needed."""
    import yaml

    caps: dict[str, Any] = {"scalable": {"properties": {"count": {"get_input": "n"}}},
                            "host": {"properties": {"num_cpus": cpus, "mem_size": mem}}}
    if public_port:
        caps["endpoint"] = {"properties": {"network_name": "PUBLIC", "ports": {
            "http": {"protocol": "tcp", "source": public_port}}}}
    if image:
        caps["os"] = {"properties": {"image": image}}
    topo: dict[str, Any] = {"inputs": {"n": {"type": "integer", "default": count}},
                            "node_templates": {node: {"type": "tosca.nodes.indigo.Compute", "capabilities": caps}}}
    if address_output:
        topo["outputs"] = {"addresses": {"value": {"get_attribute": [node, address_output]}}}
    if policies:
        topo["policies"] = policies
    path.write_text(yaml.safe_dump({"tosca_definitions_version": "tosca_simple_yaml_1_0",
                                    "topology_template": topo}, sort_keys=False))
    return str(path)


def need_java() -> None:
    from dodas.providers.local import find_java
    if find_java().get("error"):
        pytest.skip("no Java 17+ on this machine: Spark cannot run")


def need_xrootd() -> None:
    missing = [p for p in ("xrootd", "xrdcp", "xrdpfc_print") if not shutil.which(p)]
    if missing:
        pytest.skip(f"XRootD is not installed ({', '.join(missing)}): apt-get install xrootd-server xrootd-client")


class Dodas:
    """The real command line, with a DODAS_HOME of its own. `run` forks the command from a
    warm interpreter (support/zygote.py); `popen`, for commands a test signals or reads as
    they go, starts a fresh one."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.env.pop("DODAS_DB_URL", None)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        r = run_dodas(list(args), env=self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"dodas {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*DODAS, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def outputs(self, name: str, secrets: bool = False) -> dict[str, Any]:
        extra = ["--show-secrets"] if secrets else []
        return {k: v["value"] for k, v in self.json("outputs", name, *extra).items()}


def processes_of(home: Path) -> dict[int, str]:
    """Every process started for deployments under this DODAS_HOME (by the marker
    in its environment), with its command line: what /proc says, not the state."""
    needle = f"DODAS_MACHINE={home}".encode()
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            continue
        if any(item.startswith(needle) for item in env.split(b"\0")):
            out[int(entry.name)] = cmd
    return out


def run_processes(dep_id: str) -> dict[int, str]:
    """What still runs of a deployment's configuration runs, with command lines:
    by the run mark (DODAS_RUN=its id: ansible-playbook, ProxyJump helpers) and
    by the deployment's socket directory (SSH masters, which rewrite their
    environment for their process title: "ssh: DIR/SOCKET [mux]")."""
    from dodas import procs
    from dodas.configure.connections import control_dir

    sockets = str(Path(control_dir(dep_id)).expanduser()) + "/"
    marked = {i.pid for i in procs.find_by_env("DODAS_RUN", dep_id)}
    out = {}
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        command = " ".join(p.info["cmdline"] or [])
        if p.info["status"] != psutil.STATUS_ZOMBIE and (p.pid in marked or sockets in command):
            out[p.pid] = command
    return out


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment as /proc shows it to other processes ({} once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(x.decode(errors="replace").split("=", 1) for x in raw.split(b"\0") if b"=" in x)


def db_rows(home: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a home's state: what a read-only command must leave as it was."""
    import sqlite3

    con = sqlite3.connect(home / "data" / "state.db")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        con.close()


def kill_leftovers(home: Path) -> None:
    """A failed test must not leave services running into the next tests."""
    from dodas import procs
    procs.terminate(list(processes_of(home)), grace=2.0)


def count_services(home: Path) -> dict[str, int]:
    counts = {"master": 0, "worker": 0, "jupyter": 0}
    for cmd in processes_of(home).values():
        if "deploy.master.Master" in cmd:
            counts["master"] += 1
        elif "deploy.worker.Worker" in cmd:
            counts["worker"] += 1
        elif "-m jupyterlab" in cmd:
            counts["jupyter"] += 1
    return counts


def wait_for(predicate, timeout: float = 120.0, every: float = 0.2) -> Any:
    """`predicate()` once true (support/waiting.py's wait_until, as the live tests call it)."""
    return wait_until(predicate, timeout=timeout, every=every)


def wait_while_running(proc, predicate, what: str, timeout: float = 900.0) -> Any:
    """Wait for `predicate` while `proc` runs: a process that ended first fails at
    once with its output; the bound is generous, only there to end a hung run (a
    loaded CI machine makes a Spark `up` slow, never wrong)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (status {proc.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def driver_is_refused(master_url: str, app_name: str = "intruder", timeout: float = 300.0) -> str:
    """Start a PySpark driver without any Spark secret against `master_url` and
    return Spark's log line saying the master refused it (the driver would retry
    for a minute; its first refusal is the answer). Fails if the driver gets in."""
    code = ("from pyspark.sql import SparkSession\n"
            f"s = SparkSession.builder.master('{master_url}').appName('{app_name}')"
            ".config('spark.driver.host', '127.0.0.1').getOrCreate()\n"
            "print('GOT IN', s.range(10).count())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                break
            seen.append(line)
            if "GOT IN" in line:
                raise AssertionError("a driver without the secret ran a job")
            if "SaslMessage" in line or "Failed to connect to master" in line:
                return line
        raise AssertionError("no refusal seen:\n" + "".join(seen)[-3000:])
    finally:
        proc.kill()
        proc.wait()


def run_notebook_cell(base_url: str, token: str, code: str, timeout: float = 300.0, kernel: str = "pyspark") -> str:
    """Start a kernel through Jupyter's REST API, run one cell over its websocket,
    return what the cell printed or displayed, and shut the kernel down."""
    import requests
    import websocket

    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{base_url}/api/kernels", json={"name": kernel}, headers=headers, timeout=30)
    r.raise_for_status()
    kernel = r.json()["id"]
    ws_url = base_url.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type":
                       "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content.get("name") == "stdout":  # not Spark's log and progress bars
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                raise AssertionError(f"cell failed: {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        raise AssertionError("the cell did not finish in time")
    finally:
        ws.close()
        requests.delete(f"{base_url}/api/kernels/{kernel}", headers=headers, timeout=30)
