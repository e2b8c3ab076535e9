"""What the autoscaler reads of an elastic deployment: its policy, where to read
its workload (Spark's master UI, an HTCondor pool's collector and a token of
the pool), the cores a new worker brings, and the instances of its node as the
state has them. Beneath services/autoscale.py (the loop) and services/planning.py
(which reads the workload to replace lost workers), which both use it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from dodas.errors import DodasError
from dodas.state.store import Store

#: how long a drained worker may take to finish what it runs before it is removed anyway
DRAIN_TIMEOUT_S = 600.0
#: the autoscaler's HTCondor token: one poll and the drains it starts, with room for clocks that differ
HTCONDOR_TOKEN_LIFETIME_S = int(DRAIN_TIMEOUT_S) + 3000
#: what the autoscaler may do in a pool: query the collector and schedd, drain startds (condor_drain
#: is an administrative command); the pool's configuration allows both to condor@TRUST_DOMAIN
HTCONDOR_TOKEN_SCOPES = ("READ", "ADMINISTRATOR")


@dataclass
class Target:
    """What one poll needs of the deployment: its policy and where to read its workload."""

    name: str
    dep_id: str
    policy: Any                  # dodas.elastic.policy.Policy
    reader_params: dict[str, Any] = field(repr=False)   # an HTCondor pool's token among them
    cores_per_worker: int
    instances: list[Any]         # dodas.elastic.decide.Instance
    #: the node's count in the deployment's plan: the one count the loop believes
    deployed: int | None = None
    #: when the deployment's record last changed (an apply, its lock): a scaling decided again on the same
    #: record is the same scaling (services/autoscale.scaling_key)
    generation: str = ""


def target(name: str) -> Target:
    """The elastic deployment `name` as the loop sees it now (its stored plan, its instances)."""
    from dodas.elastic.policy import policies

    store = Store()
    dep = store.require(name)
    plan = _stored_plan(dep)
    found = policies(plan)
    if not found:
        raise DodasError(f'deployment "{name}" has no elasticity policy: nothing to autoscale (see '
                         "templates/spark-jupyter-elastic.yaml)")
    policy = found[0]
    rows = store.instances(dep.id)
    params, cores = _workload_access(policy, plan, rows)
    return Target(name, dep.id, policy, params, cores, _instances(policy.node, rows),
                  plan.model.instance_count(policy.node) if policy.node in plan.model.nodes else None,
                  dep.updated_at.isoformat() if dep.updated_at else "")


_plans: dict[tuple[str, str, str], Any] = {}
_plans_lock = threading.Lock()


def _stored_plan(dep: Any) -> Any:
    """The deployment's stored plan, kept per template and inputs: a poll every
    few seconds must not re-plan a template that has not changed (planning is
    tens of milliseconds; reading the workload is one HTTP request)."""
    from dodas.services import recorded

    key = (dep.id, dep.template_sha256 or "", dep.inputs_sha256 or "")
    with _plans_lock:
        plan = _plans.get(key)
    if plan is None:
        plan = recorded.stored_plan(dep)
        with _plans_lock:
            if len(_plans) > 512:
                _plans.clear()
            _plans[key] = plan
    return plan


def _instances(node: str, rows: dict[tuple[str, int], Any]) -> list[Any]:
    from dodas import paths
    from dodas.elastic.decide import Instance

    out = []
    for (n, index), row in sorted(rows.items()):
        if n != node:
            continue
        attrs = row.attributes or {}
        others = tuple(a for a in (attrs.get("public_address"),) if a and a != attrs.get("private_address"))
        out.append(Instance(paths.instance_id(n, index), index, row.state, attrs.get("private_address") or "",
                            others))
    return out


def _workload_access(policy: Any, plan: Any, rows: dict[tuple[str, int], Any]) -> tuple[dict[str, Any], int]:
    """The reader's parameters and the cores one new worker brings."""
    model = plan.model
    compute = model.nodes[policy.node].compute
    cores = int(getattr(compute, "num_cpus", None) or 1)
    if policy.workload == "spark":
        master = next((n for n in model.nodes.values() if n.derives_from("tosca.nodes.dodas.Spark.Master")), None)
        if master is None or master.host is None:
            raise DodasError("the elastic workload is spark, but the deployment has no Spark master on a host")
        row = rows.get((master.host, 0))
        address = ((row.attributes or {}).get("private_address") if row else None)
        if not address:
            raise DodasError(f'the Spark master\'s host "{master.host}" has no address yet')
        port = master.properties.get("webui_port") or 8080
        worker = next((n for n in model.nodes.values()
                       if n.derives_from("tosca.nodes.dodas.Spark.Worker") and n.host == policy.node), None)
        if worker is not None and isinstance(worker.properties.get("cores"), int):
            cores = worker.properties["cores"]
        return {"master_ui_url": f"http://{address}:{port}"}, cores
    if policy.workload == "htcondor":
        from dodas.engine.context import RunContext
        return htcondor_access(policy, model, RunContext.from_rows(model, "", "", rows)), cores
    if policy.workload == "kubernetes":
        from dodas.engine.context import RunContext
        return kubernetes_access(policy, RunContext.from_rows(model, "", "", rows)), cores
    raise DodasError(f"autoscaling a {policy.workload} workload needs its connection settings, which dodas "
                     "does not take from a deployment yet (the reader exists: dodas.elastic.readers)")


def kubernetes_access(policy: Any, ctx: Any) -> dict[str, Any]:
    """The Kubernetes reader's parameters for a cluster the deployment made (INDIGO's
    ElasticCluster over a Kubernetes front end, dodas-course-spark-k8s.yaml): the
    kubeconfig its front end reported (services/cluster_access.kubeconfig_of: the API server
    at its public address). The pods waiting for room are whatever runs there (the
    Spark chart's executors and workers, the HTCondor chart's startds); the workers
    are the cluster's nodes, matched to the policy's machines by address. The
    kubeconfig is handed to the reader as text, never written to a file or logged."""
    from dodas.redact import register
    from dodas.services.cluster_access import kubeconfig_of

    conf = kubeconfig_of(ctx)
    if conf is None:
        raise DodasError(f'the elastic workload is kubernetes, but no Kubernetes front end of the deployment has '
                         f'reported a kubeconfig yet (the machines on "{policy.node}" join its cluster)')
    register(conf)
    return {"kubeconfig_text": conf}


def htcondor_access(policy: Any, model: Any, ctx: Any) -> dict[str, Any]:
    """The HTCondor reader's parameters for the pool whose execute nodes the policy
    scales (templates/htcondor.yaml): the collector (the central manager host's
    private address and the node's port) and a token of the pool for condor@its
    trust domain, signed from the signing key dodas generated for it (`ctx` holds
    the state's machines, reported attributes and secrets)."""
    from dodas.htcondor_tokens import idtoken
    from dodas.model.deployment import Instance
    from dodas.redact import register

    if any(n.derives_from("tosca.nodes.DODAS.HelmInstall.HTCondor") for n in model.nodes.values()):
        raise DodasError("autoscaling an HTCondor pool deployed by the chart on a kubernetes provider is not "
                         "supported: the autoscaler scales the execute nodes of templates/htcondor.yaml (VMs)")
    cm_type = "tosca.nodes.dodas.HTCondor.CentralManager"
    startd = next((n for n in model.nodes.values() if n.derives_from("tosca.nodes.dodas.HTCondor.Startd")
                   and model.host_compute(n.name) == policy.node), None)
    cm_name = next((r.target for r in (startd.requirements if startd else []) if r.name == "central_manager"
                    and model.nodes[r.target].derives_from(cm_type)), None)
    if cm_name is None:
        found = [n.name for n in model.nodes.values() if n.derives_from(cm_type)]
        cm_name = found[0] if len(found) == 1 else None
    if cm_name is None:
        raise DodasError(f'the elastic workload is htcondor, but no HTCondor central manager serves the execute '
                         f'nodes on "{policy.node}"')
    cm, host = model.nodes[cm_name], model.host_compute(cm_name)
    machine = ctx.machines.get(Instance(host, 0)) if host else None
    address = (machine.private_address or machine.public_address) if machine else None
    if not address:
        raise DodasError(f'the HTCondor central manager\'s host "{host}" has no address yet')
    port = cm.properties.get("port") or 9618
    inst = Instance(cm_name, 0)
    trust_domain = (ctx.attributes.get(inst) or {}).get("trust_domain")
    key = (ctx.secrets.get(inst) or {}).get("signing_key")
    if not trust_domain or not key:
        raise DodasError(f'the HTCondor central manager "{cm_name}" is not configured yet (no trust domain or '
                         "signing key in the state)")
    token = idtoken(key, f"condor@{trust_domain}", trust_domain, HTCONDOR_TOKEN_SCOPES,
                    lifetime=HTCONDOR_TOKEN_LIFETIME_S)
    # the key is masked in whatever dodas prints (second line of defence); the token, new at every poll, is
    # not registered (the registry would grow poll after poll): it is never formatted into anything
    register(key)
    return {"collector": f"{address}:{port}", "token": token}
