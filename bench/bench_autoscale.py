"""Benchmark: the autoscaler (issue "Elastic clusters", its "Speed" section).

Targets: from a Spark application waiting for cores to a new worker ALIVE at the
master under 20 s; from idle to the worker removed within one poll period after
the idle time; and the autoscaler's own CPU per poll with 100 elastic deployments.

--part latency (real, local provider): `dodas up templates/spark-jupyter-elastic.yaml`
   (idle_time, max_workers=2, cooldown; the policy's poll_interval is left at its
   default, 5 s) in a DODAS_HOME of its own, `dodas autoscale NAME --json` as a
   process (each decision line timestamped by the process itself, "time"), then
   `--repeat` cycles of a PySpark application asking for 2 cores of 1-core
   workers (1 worker exists). A monitor thread reads the master's /json/ and each
   active application's /app/?appId= page every 0.1 s (as readers/spark.py reads
   "N left") and the state database's instances of worker_hosts:
     t0  the application first seen waiting (cores left > 0)
     t1  the autoscaler's "add" decision
     t2  two workers ALIVE at the master
     t3  the application ended (gone from the master's active applications)
     t3' the "remove" decision
     t4  worker_hosts back to 1 instance in the state (the instance deleted)
   Reported: t2-t0 (target 20 s) = t1-t0 (decision delay: the poll phase) +
   t2-t1 (boot + configure: `dodas scale` by the engine and Ansible); t4-t3-idle
   (target <= one poll period) = t3'-t3-idle (decision) + t4-t3' (drain + delete).
--part cost (simulated provider + one real Spark master): `--deployments` elastic
   deployments on the simulated provider (a master host and an elastic
   worker_hosts with dodas's Elastic policy, workload spark; simulated machines
   cannot run a Spark master, so the template has no Spark master node), and ONE
   real Spark standalone master with one 1-core worker started with the pyspark
   wheel's spark-class on a loopback address, which every deployment's reader is
   pointed at. Each round polls all deployments as services.autoscale does, timed
   with time.process_time() per piece:
     target    the state reads of target() and _resume_interrupted(): the
               deployment row (twice), its stored plan (services.autoscale's cache
               keyed by deployment id, template and inputs sha), the policy, the
               instances (target()'s _workload_access is not run: no master node)
     read      reader.read() through asyncio.run, as poll() does (HTTP to the real master)
     decide    elastic.decide.decide
     save      autoscalers.save (the memory written every poll, under the lease)
   once with the master idle (one GET) and once with an application waiting for
   cores (two GETs: /json/ and its /app/ page). The master JVM's own CPU (from
   /proc) is reported beside, not in the sums. Experiments (not what the loop
   does, to size two savings): the stored plan re-planned (recorded.stored_plan)
   against the autoscaler's cache; what a new httpx.AsyncClient costs; and
   reader.read() as poll() runs it against one event loop with one kept-alive client.

--part vs-hand (real, local provider): the same deployment; alternating (A) the
   autoscaler running and (B) no autoscaler, the user running `dodas scale NAME
   worker_hosts 2` the moment the application is seen waiting (and back to 1
   after it): from the application waiting to its executors on two workers
   (two workers ALIVE, no cores left to give). Target: A within 1.2x of B.

    .venv/bin/python bench/bench_autoscale.py --part latency --repeat 3
    .venv/bin/python bench/bench_autoscale.py --part cost --deployments 100 --rounds 5
    .venv/bin/python bench/bench_autoscale.py --part vs-hand --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELASTIC = ROOT / "templates" / "spark-jupyter-elastic.yaml"
NAME = "elastic"
DODAS = [sys.executable, "-m", "dodas"]
#: 2 cores of 1-core workers: it waits for a second worker; it ends once it ran on both
APP = (
    "import time\n"
    "from pyspark.sql import SparkSession\n"
    "s = (SparkSession.builder.appName('wants-two-cores').config('spark.driver.host', '127.0.0.1')\n"
    "     .config('spark.cores.max', '2').config('spark.executor.cores', '1')\n"
    "     .config('spark.executor.memory', '512m').getOrCreate())\n"
    "sc = s.sparkContext\n"
    "deadline = time.time() + 240\n"
    "while sc._jsc.sc().getExecutorIds().size() < 2 and time.time() < deadline:\n"
    "    time.sleep(0.5)\n"
    "print('EXECUTORS', sc._jsc.sc().getExecutorIds().size(), flush=True)\n"
    "print('RESULT', sc.parallelize(range(1000), 8).map(lambda x: x * x).sum(), flush=True)\n"
    "s.stop()\n")

SIM_TEMPLATE = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    number_of_workers: {type: integer, default: 1}
  node_templates:
    master_host:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: {properties: {num_cpus: 1, mem_size: 2 GiB}}
    worker_hosts:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable: {properties: {count: {get_input: number_of_workers}}}
        host: {properties: {num_cpus: 1, mem_size: 1 GiB}}
  policies:
    - elastic_workers:
        type: tosca.policies.dodas.Elastic
        targets: [ worker_hosts ]
        properties: {min_instances: 1, max_instances: 4, idle_time: 300, max_booting: 2, cooldown: 30,
                     workload: spark}
"""


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _stats(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.1f} s, max {max(xs):.1f} s"


# -- latency: a real elastic deployment on the local provider ---------------------------------------
class Dodas:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.env.pop("DODAS_DB_URL", None)

    def run(self, *args: str, timeout: float = 900) -> str:
        r = subprocess.run([*DODAS, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise SystemExit(f"dodas {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout


class Monitor(threading.Thread):
    """Every 0.1 s: the master's workers and applications (with cores left), and the state's workers."""

    def __init__(self, ui: str) -> None:
        super().__init__(daemon=True)
        self.ui = ui.rstrip("/")
        self.stop = threading.Event()
        self.samples: list[tuple[float, int, dict[str, int], int]] = []  # (t, alive, app id -> left, state workers)

    def run(self) -> None:
        from dodas.elastic.readers.spark import app_cores
        from dodas.state.store import Store

        store = Store()
        dep_id = store.require(NAME).id
        while not self.stop.is_set():
            t = time.time()
            try:
                st = json.loads(_get(self.ui + "/json/"))
                apps = {}
                for app in st.get("activeapps") or []:
                    page = _get(f"{self.ui}/app/?{urllib.parse.urlencode({'appId': app['id']})}").decode()
                    apps[app["id"]] = app_cores(page)[2]
                alive = sum(1 for w in st.get("workers") or [] if w.get("state") == "ALIVE")
                rows = store.instances(dep_id)
                n = sum(1 for (node, _), r in rows.items()
                        if node == "worker_hosts" and r.state not in ("deleting", "deleted"))
                self.samples.append((t, alive, apps, n))
            except Exception as exc:  # noqa: BLE001 - a failed read is a missing sample, said once
                print(f"  monitor: {type(exc).__name__}: {exc}", flush=True)
            self.stop.wait(max(0.0, 0.1 - (time.time() - t)))

    def first(self, after: float, pred) -> float | None:
        return next((t for (t, alive, apps, n) in list(self.samples) if t >= after and pred(alive, apps, n)), None)

    def wait(self, after: float, pred, what: str, timeout: float = 300) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.first(after, pred)
            if t is not None:
                return t
            time.sleep(0.1)
        raise SystemExit(f"timed out waiting for {what}")


class Autoscaler:
    def __init__(self, d: Dodas) -> None:
        self.proc = subprocess.Popen([*DODAS, "autoscale", NAME, "--json"], env=d.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.decisions: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                d = json.loads(line)
                d["t"] = datetime.fromisoformat(d["time"]).timestamp()
                self.decisions.append(d)

    def wait(self, action: str, after: float, timeout: float = 300) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [d for d in list(self.decisions) if d["action"] == action and d["t"] >= after]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                raise SystemExit(f"the autoscaler ended: {self.proc.stderr.read()}")
            time.sleep(0.1)
        raise SystemExit(f"no {action} decision in {timeout:.0f} s: {self.decisions[-5:]}")


def latency(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="dodas-bench-autoscale-"))
    os.environ["DODAS_HOME"] = str(home)
    os.environ.pop("DODAS_DB_URL", None)
    d = Dodas(home)
    t = time.time()
    d.run("up", str(ELASTIC), "--name", NAME, "-i", f"idle_time={args.idle_time}", "-i", "max_workers=2",
          "-i", f"cooldown={args.cooldown}", "--yes")
    print(f"dodas up {ELASTIC.name}: {time.time() - t:.1f} s (idle_time {args.idle_time} s, cooldown "
          f"{args.cooldown} s, poll_interval: the policy's default)", flush=True)
    scaler = app = None
    mon = None
    try:
        st = json.loads(d.run("status", NAME, "--json"))
        poll_s = st["elastic"]["policy"].get("poll_interval")
        print(f"  policy: {st['elastic']['policy']}", flush=True)
        ui = {k: v["value"] for k, v in json.loads(d.run("outputs", NAME, "--json")).items()}["spark_ui_url"]
        conf = home / "sparkconf"
        d.run("spark-conf", NAME, "-o", str(conf))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
        env["SPARK_CONF_DIR"] = str(conf)
        mon = Monitor(ui)
        mon.start()
        scaler = Autoscaler(d)
        up, down = [], []
        for cycle in range(args.repeat):
            time.sleep(random.uniform(0, poll_s or 5))  # a random phase against the autoscaler's polls
            start = time.time()
            app = subprocess.Popen([sys.executable, "-c", APP], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            t0 = mon.wait(start, lambda alive, apps, n: any(left > 0 for left in apps.values()), "a waiting app")
            t1 = scaler.wait("add", start)["t"]
            t2 = mon.wait(t0, lambda alive, apps, n: alive >= 2, "two workers ALIVE")
            out, err = app.communicate(timeout=600)
            if app.returncode != 0 or "EXECUTORS 2" not in out:
                raise SystemExit(f"the application failed: {out}\n{err[-3000:]}")
            t3 = mon.wait(t2, lambda alive, apps, n: not apps, "the application gone")
            removed = scaler.wait("remove", t3)
            t3r = removed["t"]
            t4 = mon.wait(t3r, lambda alive, apps, n: n == 1, "worker_hosts back to 1")
            up.append((t2 - t0, t1 - t0, t2 - t1))
            down.append((t4 - t3 - args.idle_time, t3r - t3 - args.idle_time, t4 - t3r))
            print(f"cycle {cycle + 1}: waiting -> ALIVE {t2 - t0:.1f} s (decision {t1 - t0:.1f} s, boot+configure "
                  f"{t2 - t1:.1f} s); idle -> removed {t4 - t3:.1f} s = idle {args.idle_time} s + "
                  f"{t4 - t3 - args.idle_time:.1f} s (decision {t3r - t3 - args.idle_time:.1f} s after the idle "
                  f"time, drain+delete {t4 - t3r:.1f} s)", flush=True)
            print(f"  add: {scaler.wait('add', start)['reason']}\n  remove: {removed['reason']}", flush=True)
            time.sleep(args.cooldown + 1)
        print(f"\nwaiting -> new worker ALIVE over {len(up)} cycles: {_stats([u[0] for u in up])} (target 20 s); "
              f"decision {_stats([u[1] for u in up])}; boot+configure {_stats([u[2] for u in up])}")
        print(f"idle -> removed, beyond the idle time: {_stats([x[0] for x in down])} (target <= one poll, "
              f"{poll_s} s); decision after the idle time {_stats([x[1] for x in down])}; drain+delete "
              f"{_stats([x[2] for x in down])}")
    finally:
        _clean_up(d, app, scaler, mon)


def _clean_up(d: Dodas, app: subprocess.Popen | None, scaler: Autoscaler | None, mon: Monitor | None) -> None:
    """The application, the autoscaler and the monitor stopped; the deployment destroyed."""
    if app is not None and app.poll() is None:
        app.kill()
    if scaler is not None and scaler.proc.poll() is None:
        scaler.proc.send_signal(signal.SIGINT)
        scaler.proc.wait(timeout=60)
    if mon is not None:
        mon.stop.set()
    subprocess.run([*DODAS, "destroy", NAME, "--yes"], env=d.env, capture_output=True, timeout=600)
    print(f"destroyed {NAME}")


def _served(alive: int, apps: dict[str, int], n: int) -> bool:
    """The application has its executors on two workers: two workers ALIVE, and
    no active application still waiting for cores."""
    return alive >= 2 and all(left == 0 for left in apps.values())


def vs_hand(args: argparse.Namespace) -> None:
    """(A) the autoscaler adds the worker an application waits for, against (B) the
    user adding it by hand (`dodas scale NAME worker_hosts 2`) the moment the
    application is seen waiting, alternating A and B on one deployment; each
    from the application seen waiting to its executors on two workers."""
    home = Path(tempfile.mkdtemp(prefix="dodas-bench-autoscale-"))
    os.environ["DODAS_HOME"] = str(home)
    os.environ.pop("DODAS_DB_URL", None)
    d = Dodas(home)
    d.run("up", str(ELASTIC), "--name", NAME, "-i", f"idle_time={args.idle_time}", "-i", "max_workers=2",
          "-i", f"cooldown={args.cooldown}", "--yes")
    mon = app = scaler = None
    try:
        ui = {k: v["value"] for k, v in json.loads(d.run("outputs", NAME, "--json")).items()}["spark_ui_url"]
        conf = home / "sparkconf"
        d.run("spark-conf", NAME, "-o", str(conf))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
        env["SPARK_CONF_DIR"] = str(conf)
        mon = Monitor(ui)
        mon.start()
        got: dict[str, list[float]] = {"A": [], "B": []}

        def application() -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-c", APP], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)

        def finished(proc: subprocess.Popen) -> None:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0 or "EXECUTORS 2" not in out:
                raise SystemExit(f"the application failed: {out}\n{err[-3000:]}")

        for cycle in range(args.repeat):
            scaler = Autoscaler(d)
            time.sleep(random.uniform(0, 5))  # a random phase against the autoscaler's polls
            start = time.time()
            app = application()
            t0 = mon.wait(start, lambda alive, apps, n: any(left > 0 for left in apps.values()), "a waiting app")
            t2 = mon.wait(t0, _served, "the executors on two workers")
            finished(app)
            t3 = mon.wait(t2, lambda alive, apps, n: not apps, "the application gone")
            scaler.wait("remove", t3)
            mon.wait(t3, lambda alive, apps, n: n == 1, "worker_hosts back to 1")
            scaler.proc.send_signal(signal.SIGINT)
            scaler.proc.wait(timeout=60)
            got["A"].append(t2 - t0)
            start = time.time()
            app = application()
            t0 = mon.wait(start, lambda alive, apps, n: any(left > 0 for left in apps.values()), "a waiting app")
            d.run("scale", NAME, "worker_hosts", "2", "--yes", "--quiet")
            t2 = mon.wait(t0, _served, "the executors on two workers")
            finished(app)
            d.run("scale", NAME, "worker_hosts", "1", "--yes", "--quiet")
            got["B"].append(t2 - t0)
            print(f"cycle {cycle + 1}: autoscaler {got['A'][-1]:.1f} s, by hand {got['B'][-1]:.1f} s", flush=True)
        a, b = statistics.median(got["A"]), statistics.median(got["B"])
        print(f"\nwaiting -> executors on the new worker, medians of {args.repeat}: autoscaler {a:.1f} s, "
              f"dodas scale by hand {b:.1f} s, ratio {a / b:.2f} (target <= 1.2)")
    finally:
        _clean_up(d, app, scaler, mon)


# -- cost: 100 elastic deployments on the simulated provider, one real master -----------------------
def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Spark:
    """A real standalone master and one 1-core worker from the pyspark wheel (as tests/test_elastic_spark_reader.py)."""

    def __init__(self, tmp: Path) -> None:
        import pyspark

        from dodas.providers.local import find_java
        net = f"127.81.{random.randint(1, 250)}"
        self.host, self.worker_host = f"{net}.1", f"{net}.2"
        (tmp / "conf").mkdir(parents=True)
        (tmp / "conf" / "spark-defaults.conf").write_text(
            "spark.decommission.enabled true\nspark.master.rest.enabled false\nspark.ui.killEnabled false\n")
        self.tmp = tmp
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPARK_")},
                    "SPARK_HOME": os.path.dirname(pyspark.__file__), "JAVA_HOME": find_java()["home"],
                    "SPARK_CONF_DIR": str(tmp / "conf"), "SPARK_LOG_DIR": str(tmp / "logs"),
                    "SPARK_DAEMON_MEMORY": "256m", "PYSPARK_PYTHON": sys.executable}
        self.port = _free_port(self.host)
        self.ui = f"http://{self.host}:{_free_port(self.host)}"
        self.url = f"spark://{self.host}:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def spawn(self, host: str, *args: str, log: str) -> subprocess.Popen:
        cmd = [str(Path(self.env["SPARK_HOME"]) / "bin" / "spark-class"), *args]
        p = subprocess.Popen(cmd, env={**self.env, "SPARK_LOCAL_IP": host}, stdout=open(self.tmp / log, "wb"),
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def _state(self) -> dict:
        try:
            return json.loads(_get(self.ui + "/json/"))
        except OSError:
            return {}

    def _until(self, pred, what: str) -> None:
        deadline = time.time() + 300
        while not pred(self._state()):
            if time.time() > deadline:
                raise SystemExit(f"timed out: {what}")
            time.sleep(0.5)

    def start(self) -> None:
        self.master = self.spawn(self.host, "org.apache.spark.deploy.master.Master", "--host", self.host, "--port",
                                 str(self.port), "--webui-port", self.ui.rsplit(":", 1)[1], log="master.log")
        self._until(bool, "the master's UI")
        self.spawn(self.worker_host, "org.apache.spark.deploy.worker.Worker", "--host", self.worker_host, "--cores",
                   "1", "--memory", "1024m", "--webui-port", str(_free_port(self.worker_host)), "--work-dir",
                   str(self.tmp / "work"), self.url, log="worker.log")
        self._until(lambda s: any(w["state"] == "ALIVE" for w in s.get("workers", [])), "the worker ALIVE")

    def waiting_app(self) -> None:
        """A driver asking for 2 cores of the 1 there are: it waits as long as it runs."""
        code = APP.replace(".config('spark.driver.host', '127.0.0.1')", f".master('{self.url}')"
                           f".config('spark.driver.host', '{self.host}')")
        self.procs.append(subprocess.Popen([sys.executable, "-c", code], env={**self.env, "SPARK_LOCAL_IP": self.host},
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           stdin=subprocess.DEVNULL, start_new_session=True))
        self._until(lambda s: bool(s.get("activeapps")), "the application at the master")

    def master_cpu(self) -> float:
        """CPU seconds of the master's JVM (the child of spark-class's shell, if any) so far."""
        total = 0.0
        for pid in [self.master.pid, *_children(self.master.pid)]:
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total

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


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError):
                pass
    return out


def poll_round(names: list[str], ui: str, memories: dict, owner: str, cold: bool = False) -> dict[str, float]:
    """One poll of every deployment, as services.autoscale's _poll_once does it; CPU seconds per piece."""
    from dodas.elastic.decide import decide
    from dodas.elastic.policy import policies
    from dodas.elastic.readers import reader_for
    from dodas.services import autoscale
    from dodas.state import autoscalers
    from dodas.state.store import Store

    cpu = {"target": 0.0, "read": 0.0, "decide": 0.0, "save": 0.0}
    pc = time.process_time
    wall = time.perf_counter()
    for name in names:
        c = pc()
        if cold:
            autoscale._plans.clear()  # the experiment: a re-plan every poll, as before the cache
        store = Store()
        dep = store.require(name)
        plan = autoscale._stored_plan(dep)
        policy = policies(plan)[0]
        rows = store.instances(dep.id)
        instances = autoscale._instances(policy.node, rows)
        Store().require(name)  # _resume_interrupted reads the row again
        c2 = pc()
        reader = reader_for(policy.workload, master_ui_url=ui)
        workload = asyncio.run(reader.read())
        c3 = pc()
        decision = decide(policy, workload, instances, memories[name], time.time(), cores_per_worker=1)
        c4 = pc()
        assert autoscalers.save(name, owner, 60.0, memories[name].to_json(), decision.reason)
        c5 = pc()
        cpu["target"] += c2 - c
        cpu["read"] += c3 - c2
        cpu["decide"] += c4 - c3
        cpu["save"] += c5 - c4
    cpu["wall"] = time.perf_counter() - wall
    return cpu


class _Kept:
    """An httpx client kept open across reads (the experiment's reader uses it instead of a new one)."""

    def __init__(self, client) -> None:
        self.client = client

    async def __aenter__(self):
        return self.client

    async def __aexit__(self, *exc) -> bool:
        return False


def experiments(names: list[str], ui: str) -> None:
    """Not what services.autoscale does: what the two candidate savings would save, per poll."""
    import httpx

    from dodas.elastic.readers.spark import SparkReader
    from dodas.services import autoscale, recorded
    from dodas.state.store import Store

    pc, n = time.process_time, len(names)
    deps = [Store().require(name) for name in names]
    for dep in deps:
        autoscale._stored_plan(dep)
    for _ in range(2):
        c = pc()
        for dep in deps:
            recorded.stored_plan(dep)
        replan = pc() - c
        c = pc()
        for dep in deps:
            autoscale._stored_plan(dep)
        cached = pc() - c
        print(f"experiment, the stored plan: re-planned {replan * 1000 / n:.2f} ms a poll, from services.autoscale's "
              f"cache {cached * 1000 / n:.3f} ms", flush=True)
    c = pc()
    for _ in names:
        asyncio.run(httpx.AsyncClient().aclose())
    client_cost = pc() - c
    c = pc()
    for _ in names:
        asyncio.run(asyncio.sleep(0))
    loop_cost = pc() - c
    print(f"experiment, what a read pays before any request: a new httpx.AsyncClient {client_cost * 1000 / n:.2f} ms "
          f"(with asyncio.run), asyncio.run alone {loop_cost * 1000 / n:.2f} ms", flush=True)
    loop = asyncio.new_event_loop()
    try:
        kept = _Kept(loop.run_until_complete(_client()))
        for _ in range(2):
            c = pc()
            for _ in names:
                reader = SparkReader(ui)
                reader._client = lambda: kept
                loop.run_until_complete(reader.read())
            shared = pc() - c
            c = pc()
            for _ in names:
                asyncio.run(SparkReader(ui).read())
            fresh = pc() - c
            print(f"experiment, reader.read(): as poll() does (asyncio.run, a new client) {fresh * 1000 / n:.2f} ms a "
                  f"poll; one event loop and one kept-alive client for all {shared * 1000 / n:.2f} ms", flush=True)
        loop.run_until_complete(kept.client.aclose())
    finally:
        loop.close()


async def _client():
    import httpx
    return httpx.AsyncClient(timeout=10.0, follow_redirects=False)


def cost(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="dodas-bench-autoscale-cost-"))
    os.environ["DODAS_HOME"] = str(home)
    os.environ.pop("DODAS_DB_URL", None)
    (home / "config").mkdir(parents=True)
    (home / "config" / "providers.yaml").write_text("providers:\n  - {name: sim, type: simulated}\n")
    template = home / "elastic-sim.yaml"
    template.write_text(SIM_TEMPLATE)

    from dodas.elastic.decide import Memory
    from dodas.services import deploy, planning
    from dodas.state import autoscalers

    t = time.perf_counter()
    names = [f"e{i:03d}" for i in range(args.deployments)]
    for name in names:
        dplan = planning.prepare(str(template), name=name, offline=True, refresh=False, environment=False,
                                 allow_external_playbooks=False, allow_provider=lambda p: p.name == "sim")
        deploy.apply(dplan, parallelism=8)
    registered = set(autoscalers.names())
    assert set(names) <= registered, "apply registers every elastic deployment's autoscaler"
    print(f"{args.deployments} elastic deployments on the simulated provider: {time.perf_counter() - t:.1f} s",
          flush=True)
    owner = "bench#autoscale"
    for name in names:
        assert autoscalers.lease(owner, 600.0, name=name) is not None
    spark = Spark(home / "spark")
    try:
        spark.start()
        print(f"a real Spark master at {spark.ui} with one 1-core worker", flush=True)
        for label, with_app in (("master idle (1 GET a poll)", False), ("an application waiting (2 GETs a poll)",
                                                                            True)):
            if with_app:
                spark.waiting_app()
                time.sleep(3)
            memories = {n: Memory() for n in names}
            poll_round(names, spark.ui, memories, owner)  # warm: imports, plans cached, connections
            print(f"\n{label}: {args.rounds} rounds of {len(names)} polls", flush=True)
            rounds = []
            for _ in range(args.rounds):
                m0 = spark.master_cpu()
                r = poll_round(names, spark.ui, memories, owner)
                r["master"] = spark.master_cpu() - m0
                rounds.append(r)
                total = sum(r[k] for k in ("target", "read", "decide", "save"))
                print(f"  round: {total * 1000:.0f} ms CPU for {len(names)} polls ({total * 1000 / len(names):.2f} ms "
                      f"a poll: target {r['target'] * 1000 / len(names):.2f}, read {r['read'] * 1000 / len(names):.2f},"
                      f" decide {r['decide'] * 1000 / len(names):.3f}, save {r['save'] * 1000 / len(names):.2f}); "
                      f"wall {r['wall']:.2f} s; the master JVM {r['master'] * 1000 / len(names):.2f} ms a poll",
                      flush=True)
            med = {k: statistics.median(r[k] for r in rounds) * 1000 / len(names) for k in rounds[0]}
            total = med["target"] + med["read"] + med["decide"] + med["save"]
            print(f"  median a poll: {total:.2f} ms CPU (target {med['target']:.2f}, read {med['read']:.2f}, "
                  f"decide {med['decide']:.3f}, save {med['save']:.2f}); {total * len(names) / 5000 * 100:.1f}% of "
                  f"one core for {len(names)} deployments polled every 5 s; master JVM {med['master']:.2f} ms a poll")
        experiments(names, spark.ui)
    finally:
        spark.stop()
        for name in names:
            autoscalers.release(name, owner)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=("latency", "cost", "vs-hand"), required=True)
    p.add_argument("--repeat", type=int, default=3, help="latency: scale-up/down cycles")
    p.add_argument("--idle-time", type=int, default=10)
    p.add_argument("--cooldown", type=int, default=2)
    p.add_argument("--deployments", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    {"latency": latency, "cost": cost, "vs-hand": vs_hand}[args.part](args)


if __name__ == "__main__":
    main()
