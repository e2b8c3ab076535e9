"""The autoscaler's decisions, from recorded workloads read through the real readers.

- Spark: the master's JSON and an application's page recorded from a real master
  (pyspark 4.3) while an application with spark.cores.max 4 waited on two 1-core
  workers, and after a worker was decommissioned (tests/data/elastic/spark_*).
- Kubernetes: node and pod lists in the API's JSON, deserialised by the
  `kubernetes` client's own models through a stand-in REST transport (written in
  the API's format, not recorded from a live cluster).
- HTCondor: job and slot ClassAds in `condor_q -long` / `condor_status -long`
  text, parsed by the `classad2` bindings offline (not from a live pool).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import httpx

from dodas.elastic.decide import Instance, Memory, decide
from dodas.elastic.policy import Policy
from dodas.elastic.readers.spark import SparkReader, app_cores
from dodas.elastic.workload import WorkerLoad, Workload

DATA = Path(__file__).parent / "data" / "elastic"
NODE = "worker_hosts"


def policy(**kw) -> Policy:
    base = dict(node=NODE, count_input="n_workers", min_instances=1, max_instances=4, idle_time=60.0, max_booting=2,
                cooldown=30.0, workload="spark", poll_interval=5.0, boot_timeout=300.0, source="policy elastic")
    return Policy(**{**base, **kw})


def instances(*addresses: str, states: dict[int, str] | None = None) -> list[Instance]:
    return [Instance(id=f"{NODE}[{i}]", index=i, state=(states or {}).get(i, "started"), address=a)
            for i, a in enumerate(addresses)]


# --- recorded workloads, through the readers ----------------------------------------------------------------

def spark_transport(master: str, worker: str | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "127.77.200.1" and request.url.path == "/json/":
            return httpx.Response(200, json=json.loads((DATA / master).read_text()))
        if request.url.path == "/app/":
            return httpx.Response(200, text=(DATA / "spark_app_waiting.html").read_text())
        if worker and request.url.path == "/json/":
            return httpx.Response(200, json=json.loads((DATA / worker).read_text()))
        return httpx.Response(404)
    return httpx.MockTransport(handler)


def spark_workload(master: str = "spark_master_waiting.json", worker: str | None = None) -> Workload:
    reader = SparkReader("http://127.77.200.1:18080", transport=spark_transport(master, worker))
    return asyncio.run(reader.read())


class _Resp:
    """What the kubernetes client's REST layer returns (status, data, headers)."""

    def __init__(self, data: bytes) -> None:
        self.status, self.reason, self.data = 200, "OK", data
        self.headers = {"content-type": "application/json"}
        self.response = self

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict:
        return self.headers

    def getheader(self, name: str, default=None):
        return self.headers.get(name, default)


class _RecordedRest:
    """A stand-in for the client's REST transport: the recorded lists, deserialised by the client's models."""

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        path = url.split("?")[0]
        if method == "GET" and path.endswith("/api/v1/nodes"):
            return _Resp((DATA / "k8s_nodes.json").read_bytes())
        if method == "GET" and path.endswith("/api/v1/pods"):
            return _Resp((DATA / "k8s_pods.json").read_bytes())
        raise AssertionError(f"unexpected {method} {url}")


def kubernetes_workload() -> Workload:
    from kubernetes import client

    from dodas.elastic.readers.kubernetes import KubernetesReader
    api = client.ApiClient(client.Configuration(host="https://10.0.0.10:6443"))
    api.rest_client = _RecordedRest()
    return asyncio.run(KubernetesReader(api_client=api).read())


def test_kubernetes_workload_read_from_the_cluster_the_deployment_made(tmp_path):
    """INDIGO's ElasticCluster over the seed's Kubernetes front end (the Spark chart on the
    cluster's VMs): the autoscaler reads the cluster through the kubeconfig the front end
    reported (the API server at the front end's public address, the text never written to
    a file), matches the cluster's nodes (the recorded list) to the policy's machines by
    address, and adds a machine for the pods that wait for room."""
    from types import SimpleNamespace

    import pytest
    from support.templates import kubernetes_indigo

    from dodas import services
    from dodas.elastic.policy import policies
    from dodas.elastic.readers import reader_for
    from dodas.errors import DodasError
    from dodas.services.autoscale_target import _instances, _workload_access

    t = tmp_path / "k8s.yaml"
    t.write_text(kubernetes_indigo())
    plan = services.validate(str(t), offline=True)
    (p,) = policies(plan.model)
    assert (p.node, p.workload) == ("k8s_slave_server", "kubernetes")
    kubeconfig = ("apiVersion: v1\nkind: Config\ncurrent-context: admin@k\n"  # as kubeadm writes it
                  "clusters:\n- cluster:\n    server: https://10.0.0.10:6443\n  name: k\n"
                  "users:\n- name: admin\n  user:\n    token: not-a-real-token\n"
                  "contexts:\n- context:\n    cluster: k\n    user: admin\n  name: admin@k\n")

    def row(kind: str, attributes: dict, secrets: dict | None = None) -> SimpleNamespace:
        return SimpleNamespace(kind=kind, attributes=attributes, secrets=secrets or {}, state="started")
    rows = {("k8s_master_server", 0): row("compute", {"provider_id": "vm-0", "private_address": "10.0.0.10",
                                                      "public_address": "192.0.2.10"}),
            ("k8s_master", 0): row("software", {}, {"kubeconfig": kubeconfig}),
            ("k8s_slave_server", 0): row("compute", {"provider_id": "vm-1", "private_address": "10.0.0.11"}),
            ("k8s_slave_server", 1): row("compute", {"provider_id": "vm-2", "private_address": "10.0.0.12"})}
    params, cores = _workload_access(p, plan, rows)
    assert list(params) == ["kubeconfig_text"]
    reader = reader_for("kubernetes", **params)
    assert reader.api_client().configuration.host == "https://192.0.2.10:6443"
    reader.api_client().rest_client = _RecordedRest()
    w = asyncio.run(reader.read())
    insts = _instances(p.node, rows)
    assert {i.id: [x.id for x in w.workers if i.matches(x)] for i in insts} == {
        "k8s_slave_server[0]": ["k8s-wn-0"], "k8s_slave_server[1]": ["k8s-wn-1"]}
    d = decide(p, w, insts, Memory(), 0.0, cores_per_worker=cores, deployed=2)
    assert (d.action, d.count) == ("add", 3) and "pods waiting" in d.reason, d.reason
    # before the front end reported its kubeconfig: said, not a traceback
    del rows[("k8s_master", 0)]
    with pytest.raises(DodasError, match="no Kubernetes front end of the deployment has reported a kubeconfig"):
        _workload_access(p, plan, rows)


def htcondor_workload() -> Workload:
    import classad2 as classad

    from dodas.elastic.readers.htcondor import HTCondorReader
    ads = {"jobs": list(classad.parseAds((DATA / "htcondor_jobs.ads").read_text())),
           "slots": list(classad.parseAds((DATA / "htcondor_slots.ads").read_text()))}
    return asyncio.run(HTCondorReader(query=ads.__getitem__).read())


def idle(w: Workload) -> Workload:
    """The same cluster once nothing waits any more."""
    return replace(w, waiting_cores=0, waiting=())


# --- the readers' view of the recordings ---------------------------------------------------------------------

def test_spark_recording_reads_as_waiting():
    w = spark_workload()
    assert w.waiting_cores == 2
    assert len(w.waiting) == 1 and 'application "wide"' in w.waiting[0] and "waits for 2 cores" in w.waiting[0]
    assert {(x.host, x.busy, x.cores, x.state) for x in w.workers} == {("127.77.200.2", True, 1, "ALIVE"),
                                                                       ("127.77.200.3", True, 1, "ALIVE")}
    assert app_cores((DATA / "spark_app_waiting.html").read_text()) == (4, 2, 2)
    assert app_cores("<li><strong>Cores:</strong>\n Unlimited (0 granted)\n</li>") == (None, 0, 0)


def test_spark_decommissioned_worker_is_idle_though_the_master_counts_a_core():
    # the master keeps coresused 1 for a decommissioned worker after its executor ended;
    # the worker's own JSON lists no executor
    w = spark_workload("spark_master_decommissioned.json", "spark_worker_decommissioned.json")
    by_host = {x.host: x for x in w.workers}
    assert by_host["127.77.200.3"].state == "DECOMMISSIONED" and not by_host["127.77.200.3"].busy
    assert by_host["127.77.200.2"].alive and not by_host["127.77.200.2"].busy
    assert w.waiting_cores == 0


def test_spark_idle_clock_from_the_workers_finished_applications():
    """When an idle worker last had work, from the recordings: the worker's own JSON names the
    application its finished executor served, the master's `completedapps` when it ended."""
    from dodas.elastic.readers.spark import app_ends, idle_since

    master = json.loads((DATA / "spark_master_decommissioned.json").read_text())
    worker = json.loads((DATA / "spark_worker_decommissioned.json").read_text())
    end = (1796374602857 + 70391) / 1000
    assert idle_since(worker, app_ends(master)) == end
    # the application still runs (an executor removed early), or the master forgot it: unknown
    assert idle_since(worker, {"app-20261204085642-0000": None}) is None
    assert idle_since(worker, {}) is None
    assert idle_since({**worker, "finishedexecutors": []}, app_ends(master)) is None, "never had work"
    assert idle_since({**worker, "executors": worker["finishedexecutors"]}, app_ends(master)) is None, "busy"
    # through the reader: the idle ALIVE worker asks its own JSON (the recording's transport serves
    # that one worker's JSON to every worker)
    w = spark_workload("spark_master_decommissioned.json", "spark_worker_decommissioned.json")
    assert w.worker_at("127.77.200.2").idle_since == end
    assert w.worker_at("127.77.200.3").idle_since is None, "decommissioned: not idle, draining"


def test_the_idle_clock_is_the_workloads_not_the_first_poll():
    p = policy(idle_time=60.0, min_instances=0)
    insts = instances("10.0.0.1", "10.0.0.2")
    # first seen now, but idle for 120 s in the workload's records: removable at once
    w = Workload(0, (), (WorkerLoad("a", "10.0.0.1", False, 1, 0, "ALIVE", idle_since=880.0),
                         WorkerLoad("b", "10.0.0.2", True, 1, 1, "ALIVE")))
    m = Memory()
    d = decide(p, w, insts, m, 1000.0, cores_per_worker=1, deployed=2)
    assert (d.action, d.remove) == ("remove", (f"{NODE}[0]",)), d.reason
    assert "120 s" in d.reason, d.reason
    # seen idle 200 s ago, but an application came and went between two polls: idle for 10 s only
    m = Memory(idle_since={"10.0.0.1": 800.0})
    w = replace(w, workers=(replace(w.workers[0], idle_since=990.0), w.workers[1]))
    d = decide(p, w, insts, m, 1000.0, cores_per_worker=1, deployed=2)
    assert d.action != "remove" and m.idle_since["10.0.0.1"] == 990.0, d.reason
    # a master's clock ahead of ours never makes the clock start in the future
    w = replace(w, workers=(replace(w.workers[0], idle_since=5000.0), w.workers[1]))
    decide(p, w, insts, m, 1000.0, cores_per_worker=1, deployed=2)
    assert m.idle_since["10.0.0.1"] == 1000.0


def test_kubernetes_recording():
    w = kubernetes_workload()
    # spark-exec-1 (2 CPUs) fits no node, gpu-train-0's nodeSelector matches none; histos fits k8s-wn-1;
    # kube-system's pending metrics-server is ignored
    assert w.waiting_cores == 3
    assert [x.split('"')[1] for x in w.waiting] == ["analysis/spark-exec-1", "analysis/gpu-train-0"]
    by_host = {x.host: x for x in w.workers}
    assert by_host["10.0.0.11"].busy                      # a user's deployment runs there
    assert not by_host["10.0.0.12"].busy                  # daemon pods, coredns (kube-system), a finished job
    assert not by_host["10.0.0.10"].busy                  # static (mirror) pods only


def test_htcondor_recording():
    w = htcondor_workload()
    # 3 idle 1-core jobs and one of 2 cores (RequestCpus an expression) need 5 cores; 2 are unclaimed
    assert w.waiting_cores == 3 and len(w.waiting) == 4
    by_host = {x.host: x for x in w.workers}
    assert by_host["10.0.0.21"].busy and by_host["10.0.0.21"].cores == 2
    assert not by_host["10.0.0.22"].busy and by_host["10.0.0.22"].state == "Unclaimed"


# --- scale-up -------------------------------------------------------------------------------------------------

def test_spark_waiting_adds_workers_with_a_reason():
    m = Memory()
    d = decide(policy(), spark_workload(), instances("127.77.200.2", "127.77.200.3"), m, 1000.0, cores_per_worker=1)
    assert (d.action, d.count, d.remove) == ("add", 4, ())
    assert d.reason == ("1 application waiting for 2 cores; adding 2 workers of 1 core "
                        "(max 4, 2 booting at most); waiting: application \"wide\" (app-20261204085157-0000) "
                        "waits for 2 cores (2 granted)")
    assert m.booting == {f"{NODE}[2]": 1000.0, f"{NODE}[3]": 1000.0} and m.last_decision_at == 1000.0


def test_policy_at_max_never_exceeds_it():
    w = spark_workload()
    d = decide(policy(max_instances=2), w, instances("127.77.200.2", "127.77.200.3"), Memory(), 0.0, cores_per_worker=1)
    assert (d.action, d.count) == ("none", 2)
    assert d.reason == "at max 2: 1 application waiting for 2 cores"
    for mx in range(2, 7):
        for cores in (1, 2, 3):
            for waiting in (1, 5, 40):
                d = decide(policy(max_instances=mx, max_booting=10), replace(w, waiting_cores=waiting),
                           instances("127.77.200.2", "127.77.200.3"), Memory(), 0.0, cores_per_worker=cores)
                assert d.count <= mx


def test_booting_limit_and_booting_workers_covering_the_wait():
    w = spark_workload()
    m = Memory()
    p = policy(max_booting=1, cooldown=0)
    d = decide(p, w, instances("127.77.200.2", "127.77.200.3"), m, 0.0, cores_per_worker=1)
    assert (d.action, d.count) == ("add", 3) and "1 more needed" in d.reason
    # the new instance exists but has not registered: at the booting limit
    now = instances("127.77.200.2", "127.77.200.3", "127.77.200.4", states={2: "configuring"})
    d = decide(p, w, now, m, 10.0, cores_per_worker=1)
    assert d.action == "wait" and "1 worker booting already (1 at most)" in d.reason
    # with 2-core workers the one booting covers the 2 waiting cores
    d = decide(p, w, now, m, 20.0, cores_per_worker=2)
    assert d.action == "wait" and d.reason.endswith("1 worker booting (2 cores) will cover it")


def test_quota_bounds_the_scale_up():
    d = decide(policy(max_booting=4), spark_workload(), instances("127.77.200.2", "127.77.200.3"), Memory(), 0.0,
               cores_per_worker=1, quota_left=1)
    assert (d.action, d.count) == ("add", 3) and "quota 1" in d.reason
    d = decide(policy(), spark_workload(), instances("127.77.200.2", "127.77.200.3"), Memory(), 0.0,
               cores_per_worker=1, quota_left=0)
    assert (d.action, d.count) == ("none", 2) and "quota" in d.reason


def test_cooldown_between_decisions():
    m = Memory(last_decision_at=100.0)
    d = decide(policy(cooldown=30), spark_workload(), instances("127.77.200.2", "127.77.200.3"), m, 110.0,
               cores_per_worker=1)
    assert d.action == "wait" and "cooling down (30 s between decisions, 10 s since the last)" in d.reason
    d = decide(policy(cooldown=30), spark_workload(), instances("127.77.200.2", "127.77.200.3"), m, 131.0,
               cores_per_worker=1)
    assert d.action == "add"


def test_kubernetes_and_htcondor_waits_add_workers():
    d = decide(policy(workload="kubernetes", max_booting=4), kubernetes_workload(),
               instances("10.0.0.11", "10.0.0.12"), Memory(), 0.0, cores_per_worker=2)
    assert (d.action, d.count) == ("add", 4)
    assert d.reason.startswith("2 pods waiting for 3 cores; adding 2 workers of 2 cores")
    d = decide(policy(workload="htcondor", max_instances=3), htcondor_workload(),
               instances("10.0.0.21", "10.0.0.22"), Memory(), 0.0, cores_per_worker=2)
    assert (d.action, d.count) == ("add", 3)
    assert d.reason.startswith("4 jobs waiting for 3 cores; adding 1 worker of 2 cores (max 3, 2 booting at most); "
                               "1 more needed; waiting: job ")
    # the first three jobs by name, then how many more
    assert d.reason.count(" is idle and requests ") == 3 and d.reason.endswith(" and 1 more"), d.reason


# --- boots that fail ----------------------------------------------------------------------------------------

def test_boot_timeout_removes_the_worker_and_backs_off_after_three():
    p = policy(cooldown=30, boot_timeout=300, max_booting=1)
    w = spark_workload()
    m = Memory()
    t = 0.0
    for failure in (1, 2, 3):
        d = decide(p, w, instances("127.77.200.2", "127.77.200.3"), m, t, cores_per_worker=1)
        assert (d.action, d.count) == ("add", 3), d.reason
        stuck = instances("127.77.200.2", "127.77.200.3", "127.77.200.4", states={2: "configuring"})
        t += 200
        d = decide(p, w, stuck, m, t, cores_per_worker=1)
        assert d.action == "wait"               # still within the boot timeout
        t += 101
        d = decide(p, w, stuck, m, t, cores_per_worker=1)
        assert (d.action, d.count, d.remove) == ("remove", 2, (f"{NODE}[2]",))
        assert d.reason.startswith("boot timed out for worker_hosts[2] (not up after 300 s); removing 1 worker (")
        assert m.failures == failure
        t += 31
        if failure < 3:
            assert m.backoff_until is None and f"{failure} failed boot" in d.reason
    assert d.reason.endswith("(3 failed boots in a row: no workers added for 150 s)")
    assert m.backoff_until == t - 31 + 150
    d = decide(p, w, instances("127.77.200.2", "127.77.200.3"), m, t, cores_per_worker=1)
    assert d.action == "wait" and "backing off after" in d.reason
    # once the back-off has passed, a worker that comes up resets the count
    d = decide(p, w, instances("127.77.200.2", "127.77.200.3"), m, m.backoff_until + 1, cores_per_worker=1)
    assert d.action == "add"
    up = replace(w, workers=w.workers + (WorkerLoad("worker-x", "127.77.200.4", False, 1, 0, "ALIVE"),))
    decide(p, up, instances("127.77.200.2", "127.77.200.3", "127.77.200.4"), m, m.backoff_until + 40,
           cores_per_worker=1)
    assert m.failures == 0 and m.backoff_until is None


def test_instance_in_error_is_removed_at_once():
    m = Memory(booting={f"{NODE}[2]": 0.0})
    insts = instances("127.77.200.2", "127.77.200.3", "127.77.200.4", states={2: "error"})
    d = decide(policy(), spark_workload(), insts, m, 5.0, cores_per_worker=1)
    assert (d.action, d.count, d.remove) == ("remove", 2, (f"{NODE}[2]",))
    assert "worker_hosts[2] (in error)" in d.reason and m.failures == 1


# --- scale-down ---------------------------------------------------------------------------------------------

def test_idle_worker_removed_after_idle_time_never_below_min():
    w = idle(kubernetes_workload())
    p = policy(workload="kubernetes")
    m = Memory()
    insts = instances("10.0.0.11", "10.0.0.12")
    d = decide(p, w, insts, m, 1000.0, cores_per_worker=2)
    assert d.action == "none" and "idle for 0 s of 60 s" in d.reason
    d = decide(p, w, insts, m, 1065.0, cores_per_worker=2)
    assert (d.action, d.count, d.remove) == ("remove", 1, (f"{NODE}[1]",))
    assert d.reason == "worker_hosts[1] idle for 65 s (idle time 60 s); removing it (min 1 alive)"
    d = decide(policy(workload="kubernetes", min_instances=2), w, insts, Memory(idle_since=dict(m.idle_since)),
               1100.0, cores_per_worker=2)
    assert (d.action, d.count) == ("none", 2) and "at min 2" in d.reason


def test_a_busy_last_worker_does_not_hold_back_the_idle_ones():
    w = idle(htcondor_workload())
    m = Memory(idle_since={"10.0.0.22": 0.0})
    # the idle startd is instance 0, the busy one is the last: the idle one goes, by name
    d = decide(policy(workload="htcondor"), w, instances("10.0.0.22", "10.0.0.21"), m, 500.0, cores_per_worker=2)
    assert (d.action, d.count, d.remove) == ("remove", 1, (f"{NODE}[0]",))
    assert d.reason == "worker_hosts[0] idle for 500 s (idle time 60 s); removing it (min 1 alive)"


def test_busy_last_worker_and_two_idle_before_it():
    """The issue's case: [0] and [1] idle, [2] busy; min 1: both idle ones go, the busy one stays."""
    w = Workload(0, (), (WorkerLoad("a", "10.1.0.1", False, 2, 0, "ALIVE"), WorkerLoad("b", "10.1.0.2", False, 2, 0,
                                                                                      "ALIVE"),
                         WorkerLoad("c", "10.1.0.3", True, 2, 2, "ALIVE")))
    m = Memory(idle_since={"10.1.0.1": 0.0, "10.1.0.2": 50.0})
    d = decide(policy(), w, instances("10.1.0.1", "10.1.0.2", "10.1.0.3"), m, 200.0, cores_per_worker=2)
    assert (d.action, d.count, d.remove) == ("remove", 1, (f"{NODE}[1]", f"{NODE}[0]"))
    # with min 2 only the one idle longest goes, and the reason says who stays and why
    m = Memory(idle_since={"10.1.0.1": 0.0, "10.1.0.2": 50.0})
    d = decide(policy(min_instances=2), w, instances("10.1.0.1", "10.1.0.2", "10.1.0.3"), m, 200.0,
               cores_per_worker=2)
    assert (d.action, d.count, d.remove) == ("remove", 2, (f"{NODE}[0]",))
    assert d.reason.endswith("worker_hosts[1] stays for min 2")
    # a disabled worker is never chosen
    m = Memory(idle_since={"10.1.0.1": 0.0, "10.1.0.2": 50.0})
    d = decide(policy(), w, instances("10.1.0.1", "10.1.0.2", "10.1.0.3"), m, 200.0, cores_per_worker=2,
               disabled=frozenset({f"{NODE}[0]"}))
    assert d.remove == (f"{NODE}[1]",)


def test_min_is_counted_in_the_workloads_view():
    """dodas has two workers started, the master lists one DEAD: it is removed at once (exactly it), the
    idle alive one is not (it is the only one alive, min 1), and the min then brings a new one."""
    w = Workload(0, (), (WorkerLoad("a", "10.1.0.1", False, 2, 0, "DEAD"), WorkerLoad("b", "10.1.0.2", False, 2, 0,
                                                                                     "ALIVE")))
    m = Memory(idle_since={"10.1.0.2": 0.0})
    insts = instances("10.1.0.1", "10.1.0.2")
    d = decide(policy(), w, insts, m, 500.0, cores_per_worker=2, deployed=2)
    assert (d.action, d.count, d.remove) == ("remove", 1, (f"{NODE}[0]",))
    assert d.reason == ("worker_hosts[0] is DEAD in the spark workload while dodas has it started; "
                        "removing 1 worker")
    assert m.failures == 0, "a lost worker is no failed boot"
    one = [insts[1]]
    d = decide(policy(min_instances=2, cooldown=0), w, one, m, 510.0, cores_per_worker=2, deployed=1)
    assert (d.action, d.count, d.added) == ("add", 2, (f"{NODE}[0]",))
    d = decide(policy(cooldown=0), w, one, Memory(idle_since={"10.1.0.2": 0.0}), 520.0, cores_per_worker=2,
               deployed=1)
    assert (d.action, d.count) == ("none", 1) and "at min 1" in d.reason


def test_the_count_is_the_deployments_not_an_ask_the_provider_refused():
    """The issue's broken run: 2 workers asked, the provider refused, the deployment still has 1. The next
    decision counts 1, not 3 (it never says "at max 3"), and the refused asks are forgotten."""
    w = spark_workload()  # 1 application waiting for 2 cores
    m = Memory(booting={f"{NODE}[1]": 0.0, f"{NODE}[2]": 0.0}, last_decision_at=0.0)
    d = decide(policy(max_instances=3, max_booting=2), w, instances("127.77.200.2"), m, 100.0, cores_per_worker=1,
               deployed=1)
    assert m.booting == {f"{NODE}[1]": 100.0, f"{NODE}[2]": 100.0}, "the refused asks forgotten, the new ones kept"
    assert (d.action, d.count) == ("add", 3) and d.added == (f"{NODE}[1]", f"{NODE}[2]"), d.reason
    # an instance removed by name leaves a hole: the next one added takes it
    d = decide(policy(cooldown=0), w, [Instance(f"{NODE}[1]", 1, "started", "127.77.200.2")], Memory(), 0.0,
               cores_per_worker=1, deployed=1)
    assert d.added[0] == f"{NODE}[0]"


def test_several_idle_workers_removed_from_the_end_and_cooldown():
    w = idle(spark_workload("spark_master_decommissioned.json", "spark_worker_decommissioned.json"))
    # the clocks here are the autoscaler's (the recording's own times are of 2026: see the test above)
    w = replace(w, workers=tuple(replace(x, idle_since=None) for x in w.workers)
                + (WorkerLoad("w4", "127.77.200.4", False, 1, 0, "ALIVE"),))
    m = Memory(idle_since={"127.77.200.2": 0.0, "127.77.200.4": 0.0}, draining={f"{NODE}[3]": 50.0})
    insts = instances("127.77.200.9", "127.77.200.2", "127.77.200.4", "127.77.200.3")
    w = replace(w, workers=w.workers + (WorkerLoad("w9", "127.77.200.9", True, 1, 1, "ALIVE"),))
    d = decide(policy(), w, insts, m, 100.0, cores_per_worker=1)
    # 127.77.200.3 is DECOMMISSIONED (drained by the autoscaler) and goes though its idle clock just started
    assert (d.action, d.count) == ("remove", 1)
    assert d.remove == (f"{NODE}[3]", f"{NODE}[2]", f"{NODE}[1]")
    assert "removing 3 workers (min 1 alive)" in d.reason
    d = decide(policy(), w, insts, m, 110.0, cores_per_worker=1)
    assert d.action == "wait" and "cooling down" in d.reason


def test_a_worker_drained_behind_the_autoscalers_back_is_lost_and_replaced():
    """DECOMMISSIONED while the autoscaler did not drain it (by hand at the master, or
    enabled again after a disable): removed as lost, and the minimum brings a new one;
    a disabled one stays."""
    w = idle(spark_workload("spark_master_decommissioned.json", "spark_worker_decommissioned.json"))
    insts = instances("127.77.200.3")  # the decommissioned one only
    m = Memory()
    d = decide(policy(cooldown=0), w, insts, m, 100.0, cores_per_worker=1, deployed=1)
    # the only worker: replaced in one apply (removed first, the count would go below what the
    # template allows, and the cluster would have none)
    assert (d.action, d.count, d.remove, d.replaced) == ("remove", 1, (f"{NODE}[0]",), (f"{NODE}[0]",)), d.reason
    assert "DECOMMISSIONED in the spark workload while dodas has it started; replacing" in d.reason
    # beside a working one, above the minimum: removed only
    two = instances("127.77.200.3", "127.77.200.2")
    d = decide(policy(cooldown=0), w, two, Memory(), 100.0, cores_per_worker=1, deployed=2)
    assert (d.action, d.count, d.remove, d.replaced) == ("remove", 1, (f"{NODE}[0]",), ()), d.reason
    d = decide(policy(cooldown=0), w, insts, Memory(), 100.0, cores_per_worker=1, deployed=1,
               disabled=frozenset({f"{NODE}[0]"}))
    assert d.action != "remove", d.reason


def test_a_removal_finished_elsewhere_leaves_nothing_for_a_later_instance():
    """An autoscaler killed while removing worker_hosts[1]: the process that took over finished
    the removal; worker_hosts[1] made again later is not "draining" in its memory."""
    m = Memory(draining={f"{NODE}[1]": 5.0})
    w = Workload(0, (), (WorkerLoad("a", "10.0.0.1", False, 1, 0, "ALIVE"),))
    decide(policy(), w, instances("10.0.0.1"), m, 100.0, cores_per_worker=1, deployed=1)
    assert m.draining == {}


def test_memory_round_trips_through_json():
    m = Memory(idle_since={"10.0.0.12": 5.0}, booting={f"{NODE}[2]": 7.5}, last_decision_at=9.0, failures=2,
               backoff_until=None)
    assert Memory.from_json(json.loads(json.dumps(m.to_json()))) == m
    assert Memory.from_json(None) == Memory()


# --- draining, through the same stand-ins ------------------------------------------------------------------

class _DrainingRest(_RecordedRest):
    """The recorded cluster, answering what `drain` asks: read and patch a node, list its pods, evict them."""

    def __init__(self) -> None:
        self.pods = json.loads((DATA / "k8s_pods.json").read_text())
        self.nodes = {n["metadata"]["name"]: n for n in json.loads((DATA / "k8s_nodes.json").read_text())["items"]}
        self.calls: list[tuple[str, str]] = []

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        from urllib.parse import parse_qs, urlsplit
        u = urlsplit(url)
        self.calls.append((method, u.path))
        parts = u.path.split("/")
        if u.path.startswith("/api/v1/nodes/"):
            node = self.nodes[parts[-1]]
            if method == "PATCH":
                node["spec"].update(body["spec"])
            return _Resp(json.dumps(node).encode())
        if method == "GET" and u.path == "/api/v1/nodes":
            return _Resp(json.dumps({"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                                     "items": list(self.nodes.values())}).encode())
        if method == "GET" and u.path == "/api/v1/pods":
            selector = parse_qs(u.query).get("fieldSelector", [""])[0]
            name = selector.split("=", 1)[1] if selector else None
            items = [p for p in self.pods["items"] if name is None or p["spec"].get("nodeName") == name]
            return _Resp(json.dumps({**self.pods, "items": items}).encode())
        if method == "POST" and u.path.endswith("/eviction"):
            ns, pod = parts[4], parts[6]
            assert body["metadata"] == {"name": pod, "namespace": ns}
            self.pods["items"] = [p for p in self.pods["items"] if p["metadata"]["name"] != pod]
            return _Resp(json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "code": 201}).encode())
        raise AssertionError(f"unexpected {method} {url}")


def test_kubernetes_drain_cordons_and_evicts_only_user_pods():
    from kubernetes import client

    from dodas.elastic.readers.kubernetes import KubernetesReader
    api = client.ApiClient(client.Configuration(host="https://10.0.0.10:6443"))
    api.rest_client = rest = _DrainingRest()
    reader = KubernetesReader(api_client=api)
    busy = next(w for w in kubernetes_workload().workers if w.id == "k8s-wn-0")
    assert asyncio.run(reader.drain(busy)) is False       # the deployment's pod was still there
    assert ("PATCH", "/api/v1/nodes/k8s-wn-0") in rest.calls
    assert rest.nodes["k8s-wn-0"]["spec"]["unschedulable"] is True
    evicted = [p for m, p in rest.calls if p.endswith("/eviction")]
    assert evicted == ["/api/v1/namespaces/analysis/pods/jupyter-6f9c8d7b5-kq2lm/eviction"]  # not the daemon pods
    assert asyncio.run(reader.drain(busy)) is True        # only daemon pods left
    w = asyncio.run(reader.read())
    assert w.worker_at("10.0.0.11").state == "cordoned" and not w.worker_at("10.0.0.11").busy


def test_htcondor_drain_is_graceful_and_done_when_nothing_is_claimed():
    import classad2 as classad

    from dodas.elastic.readers.htcondor import HTCondorReader
    slots = list(classad.parseAds((DATA / "htcondor_slots.ads").read_text()))
    drained: list[str] = []

    def start_drain(name: str) -> None:
        drained.append(name)
        for s in slots:          # what the startd then advertises: draining, its jobs still running
            if s["Machine"] == name:
                s["Draining"] = True

    reader = HTCondorReader(query=lambda what: slots if what == "slots" else [], start_drain=start_drain)
    busy = next(w for w in asyncio.run(reader.read()).workers if w.host == "10.0.0.21")
    assert asyncio.run(reader.drain(busy)) is False and drained == ["wn-0.novalocal"]
    assert asyncio.run(reader.drain(busy)) is False and drained == ["wn-0.novalocal"]   # asked once
    for s in slots:
        if s["Machine"] == "wn-0.novalocal":
            s["State"], s["Activity"] = "Drained", "Idle"
    assert asyncio.run(reader.drain(busy)) is True
    assert asyncio.run(reader.read()).worker_at("10.0.0.21").state == "draining"


def test_below_min_is_brought_back_to_min():
    m = Memory()
    insts = instances("127.77.200.2", "127.77.200.3")
    d = decide(policy(min_instances=3, max_booting=1), idle(spark_workload()), insts, m, 0.0, cores_per_worker=1)
    assert (d.action, d.count) == ("add", 3) and d.reason == "2 workers, below min 3; adding 1 worker"
    assert m.booting == {f"{NODE}[2]": 0.0}
