"""Kubernetes: pending pods that fit on no node, and what each node runs, through the
`kubernetes` Python client (the `elastic` extra; imported only when used).

As CLUES's kubernetes plugin does, the `kube-system` namespace is ignored: its
pods neither wait for workers nor keep a node busy. A pod waits when it is
Pending with no node (the scheduler found none) and fits on no schedulable node
either by its CPU and memory requests and its nodeSelector; the pods that do fit
are about to be scheduled. Daemon pods (owned by a DaemonSet) and static
(mirror) pods run on every node and never make one busy. Draining is what
`kubectl drain` does: cordon, then evict (the Eviction API honours
PodDisruptionBudgets), and the node is drained when no other pod is left.

Not run against a live cluster here: tested on recorded API responses
(tests/data/elastic/) deserialised by the client's own models.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dodas.elastic.workload import WorkerLoad, Workload, plural

IGNORED_NAMESPACES = ("kube-system",)
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def _quantity(value: Any) -> Decimal:
    from kubernetes.utils import parse_quantity
    return parse_quantity(value) if value not in (None, "") else Decimal(0)


def _requests(pod: Any) -> tuple[Decimal, Decimal]:
    """(CPU cores, memory bytes) a pod requests: its containers' sum, or an init container's if larger."""
    def total(containers: Any) -> tuple[Decimal, Decimal]:
        cpu = mem = Decimal(0)
        for c in containers or []:
            req = (c.resources.requests if c.resources else None) or {}
            cpu += _quantity(req.get("cpu"))
            mem += _quantity(req.get("memory"))
        return cpu, mem
    cpu, mem = total(pod.spec.containers)
    for init in pod.spec.init_containers or []:
        icpu, imem = total([init])
        cpu, mem = max(cpu, icpu), max(mem, imem)
    return cpu, mem


def is_daemon(pod: Any) -> bool:
    """A DaemonSet's pod or a static (mirror) pod: it runs on every node, so it neither makes one busy
    nor is evicted."""
    owners = pod.metadata.owner_references or []
    return (any(o.kind == "DaemonSet" for o in owners)
            or MIRROR_ANNOTATION in (pod.metadata.annotations or {}))


def _finished(pod: Any) -> bool:
    return (pod.status.phase if pod.status else None) in ("Succeeded", "Failed")


@dataclass
class _Node:
    name: str
    address: str
    labels: dict[str, str]
    schedulable: bool
    ready: bool
    cpu: Decimal
    mem: Decimal
    cpu_used: Decimal = Decimal(0)
    mem_used: Decimal = Decimal(0)
    busy: bool = False
    taints: tuple[tuple[str, str, str], ...] = ()   # (key, value, effect) of NoSchedule/NoExecute taints

    def fits(self, cpu: Decimal, mem: Decimal, selector: dict[str, str], tolerations: list[Any]) -> bool:
        return (self.schedulable and self.ready and self.cpu - self.cpu_used >= cpu and self.mem - self.mem_used >= mem
                and all(self.labels.get(k) == v for k, v in selector.items())
                and all(_tolerated(t, tolerations) for t in self.taints))


def _tolerated(taint: tuple[str, str, str], tolerations: list[Any]) -> bool:
    key, value, effect = taint
    for t in tolerations:
        if t.effect not in (None, "", effect):
            continue
        if t.operator == "Exists" and t.key in (None, "", key):
            return True
        if t.key == key and (t.value or "") == value:
            return True
    return False


def _node(n: Any) -> _Node:
    addresses = {a.type: a.address for a in (n.status.addresses or [])} if n.status else {}
    conditions = {c.type: c.status for c in (n.status.conditions or [])} if n.status else {}
    alloc = (n.status.allocatable if n.status else None) or {}
    taints = tuple((t.key, t.value or "", t.effect) for t in ((n.spec.taints if n.spec else None) or [])
                   if t.effect in ("NoSchedule", "NoExecute"))
    address = addresses.get("InternalIP") or addresses.get("Hostname") or n.metadata.name
    return _Node(taints=taints, name=n.metadata.name, address=address, labels=dict(n.metadata.labels or {}),
                 schedulable=not (n.spec and n.spec.unschedulable), ready=conditions.get("Ready") == "True",
                 cpu=_quantity(alloc.get("cpu")), mem=_quantity(alloc.get("memory")))


def _unscheduled(pod: Any) -> bool:
    """Pending with no node: the scheduler has not placed it (Unschedulable, or not tried yet)."""
    if (pod.status.phase if pod.status else None) != "Pending" or pod.spec.node_name:
        return False
    for c in (pod.status.conditions or []):
        if c.type == "PodScheduled" and c.status == "True":
            return False
    return True


def workload_of(nodes: list[Any], pods: list[Any], ignore: tuple[str, ...] = IGNORED_NAMESPACES) -> Workload:
    """The workload of a cluster from its node and pod lists (the client's model objects)."""
    by_name = {n.metadata.name: _node(n) for n in nodes}
    pending = []
    for pod in pods:
        if _finished(pod):
            continue
        node = by_name.get(pod.spec.node_name or "")
        if node is not None:
            cpu, mem = _requests(pod)
            node.cpu_used += cpu
            node.mem_used += mem
            if not is_daemon(pod) and pod.metadata.namespace not in ignore:
                node.busy = True
        elif pod.metadata.namespace not in ignore and _unscheduled(pod):
            pending.append(pod)
    waiting_cores, waiting = 0, []
    for pod in sorted(pending, key=lambda p: (p.metadata.creation_timestamp is None, p.metadata.creation_timestamp)):
        cpu, mem = _requests(pod)
        selector = dict(pod.spec.node_selector or {})
        tolerations = list(pod.spec.tolerations or [])
        home = next((n for n in by_name.values() if n.fits(cpu, mem, selector, tolerations)), None)
        if home is not None:      # about to be scheduled there: keep its room taken
            home.cpu_used += cpu
            home.mem_used += mem
            continue
        cores = max(1, math.ceil(cpu))
        waiting_cores += cores
        extra = f", nodeSelector {selector}" if selector else ""
        waiting.append(f'pod "{pod.metadata.namespace}/{pod.metadata.name}" waits for {plural(cores, "core")} '
                       f"(requests cpu {cpu}, memory {int(mem) // 2**20} MiB{extra})")
    workers = tuple(WorkerLoad(id=n.name, host=n.address, busy=n.busy, cores=int(n.cpu),
                               cores_used=math.ceil(n.cpu_used),
                               state="cordoned" if not n.schedulable else ("Ready" if n.ready else "NotReady"))
                    for n in by_name.values())
    return Workload(waiting_cores=waiting_cores, waiting=tuple(waiting), workers=workers)


class KubernetesReader:
    """Reads a cluster through a kubeconfig and context (as dodas's kubernetes provider names them)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, *,
                 kubeconfig_text: str | None = None, api_client: Any = None,
                 ignore_namespaces: tuple[str, ...] = IGNORED_NAMESPACES) -> None:
        self.kubeconfig = kubeconfig
        self.kubeconfig_text = kubeconfig_text   # a deployment's own cluster's (never written to a file)
        self.context = context
        self._api_client = api_client   # tests pass a client whose transport replays recordings
        self.ignore = ignore_namespaces

    def api_client(self) -> Any:
        """The client of the cluster: from the kubeconfig text, else the kubeconfig file."""
        from kubernetes import config
        if self._api_client is None:
            if self.kubeconfig_text is not None:
                import yaml
                self._api_client = config.new_client_from_config_dict(yaml.safe_load(self.kubeconfig_text),
                                                                      context=self.context)
            else:
                self._api_client = config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        return self._api_client

    def _core(self) -> Any:
        from kubernetes import client
        return client.CoreV1Api(self.api_client())

    def _read(self) -> Workload:
        core = self._core()
        return workload_of(core.list_node().items, core.list_pod_for_all_namespaces().items, self.ignore)

    async def read(self) -> Workload:
        return await asyncio.to_thread(self._read)

    def _drain(self, node: str) -> bool:
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        core = self._core()
        if not core.read_node(node).spec.unschedulable:
            core.patch_node(node, {"spec": {"unschedulable": True}})
        left = [p for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
                if not is_daemon(p) and not _finished(p)]
        for pod in left:
            if pod.metadata.deletion_timestamp is not None:
                continue   # already being evicted: wait for it to end
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name,
                                                                  namespace=pod.metadata.namespace))
            try:
                core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
            except ApiException as e:
                if e.status not in (404, 429):   # 429: a disruption budget says not now; ask again next poll
                    raise
        return not left

    async def drain(self, worker: WorkerLoad) -> bool:
        """Cordon the node and evict its pods (daemon and static pods stay); True once none is left."""
        return await asyncio.to_thread(self._drain, worker.id)
