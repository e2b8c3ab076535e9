"""The autoscaler: the loop that reads an elastic deployment's workload, decides
(dodas.elastic.decide) and scales, as CLUES did through the Infrastructure
Manager, here through dodas's own scale (plan the count input, apply).

One loop per elastic deployment, held by a lease in the state database
(state/autoscalers.py): a server's workers run them (server/workers.py) and
`dodas autoscale NAME` runs one in the foreground; whichever holds the lease
scales, the others wait. Every decision with a new reason is an event of the
deployment (phase "autoscale"), so `dodas logs`, `status` and the dashboard
show why a worker came or went. The loop stores what it remembers (idle
times, workers booting, failed boots) at every poll, so a loop that dies is
resumed by the next holder without adding a worker twice: the engine
reconciles counts, and a scale a dead loop left half done is finished by the
next apply.

A scale-down drains first (Spark: the worker is decommissioned, its executors
finish what they run and take nothing new; HTCondor: the startd is drained
gracefully), then removes the instance.

The workload's connection settings come from the deployment's state: Spark's
master UI from its host's address; an HTCondor pool's collector from its
central manager's host and port, with an IDTOKEN dodas signs from the pool's
generated signing key at every poll (`htcondor_access`). Kubernetes workloads
(the dodas charts on a kubernetes provider) are not autoscaled from a deployment.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dodas.errors import DodasError
from dodas.state import autoscalers
from dodas.state.store import Store

#: how long a drained worker may take to finish what it runs before it is removed anyway
DRAIN_TIMEOUT_S = 600.0
#: the autoscaler's HTCondor token: one poll and the drains it starts, with room for clocks that differ
HTCONDOR_TOKEN_LIFETIME_S = int(DRAIN_TIMEOUT_S) + 3000
#: what the autoscaler may do in a pool: query the collector and schedd, drain startds (condor_drain
#: is an administrative command); the pool's configuration allows both to condor@TRUST_DOMAIN
HTCONDOR_TOKEN_SCOPES = ("READ", "ADMINISTRATOR")
LEASE_S = 30.0
PARALLELISM = 8


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
                  plan.model.instance_count(policy.node) if policy.node in plan.model.nodes else None)


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
    raise DodasError(f"autoscaling a {policy.workload} workload needs its connection settings, which dodas "
                     "does not take from a deployment yet (the reader exists: dodas.elastic.readers)")


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


# -- one poll --------------------------------------------------------------------------------------
def poll(t: Target, memory: Any, now: float, cap: Cap | None = None) -> tuple[Any, Any, Any]:
    """Read the workload and decide: (decision, reader, workload), adding no
    more machines than `cap` allows (a decision the quota held back says so).
    Changes nothing but `memory`."""
    from dodas.elastic.decide import decide
    from dodas.elastic.readers import reader_for

    reader = reader_for(t.policy.workload, **t.reader_params)
    workload = asyncio.run(reader.read())
    now_count = sum(1 for i in t.instances if i.state not in ("deleting", "deleted"))
    left = cap(t.name, now_count, t.cores_per_worker) if cap is not None else None
    decision = decide(t.policy, workload, t.instances, memory, now, cores_per_worker=t.cores_per_worker,
                      quota_left=left, deployed=t.deployed)
    return decision, reader, workload


def carry_out(t: Target, decision: Any, reader: Any, workload: Any, *, trusted: bool) -> str | None:
    """Do what was decided: drain what goes, then remove exactly those instances;
    or add as many of the workers decided as the provider takes. Returns what
    differs from the decision (fewer workers fit), or None."""
    if decision.action == "remove":
        for iid in decision.remove:
            inst = next((i for i in t.instances if i.id == iid), None)
            worker = next((w for w in workload.workers if inst is not None and inst.matches(w)), None)
            if worker is not None and worker.alive:
                _drain(reader, worker)
        scale(t.name, t.policy.node, decision.count, trusted=trusted, count_input=t.policy.count_input,
              remove=decision.remove)
        return None
    if decision.action == "add":
        return add_fitting(t, decision.count, trusted=trusted)
    return None


def add_fitting(t: Target, wanted: int, *, trusted: bool) -> str | None:
    """Scale the node up to `wanted`, or to as many as the provider takes (its
    capacity, quota and preflight say no to more): a count the provider refused
    is never applied, hence never the deployment's. Returns what was done instead
    ("2 wanted, 1 fits: ..."), or None when all fitted; DodasError when not one fits."""
    have = t.deployed if t.deployed is not None else len(t.instances)
    refusal: str | None = None
    for count in range(wanted, have, -1):
        try:
            scale(t.name, t.policy.node, count, trusted=trusted, count_input=t.policy.count_input,
                  only_if_fits=True)
        except Refusal as exc:
            refusal = refusal or exc.message
            continue
        if count == wanted:
            return None
        return (f"{wanted - have} wanted, {count - have} fit{'s' if count - have == 1 else ''}: {refusal}; "
                f"added {count - have} of {t.policy.node}")
    raise DodasError(f"{wanted - have} wanted, none fits: {refusal}")


class Refusal(DodasError):
    """The provider's preflight refused the planned count (capacity, quota): fewer may fit."""


def _drain(reader: Any, worker: Any) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while not asyncio.run(reader.drain(worker)):
        if time.monotonic() > deadline:
            return  # what still runs there after this long is given up (the reason said the worker was idle)
        time.sleep(1.0)


def scale(name: str, node: str, count: int, *, trusted: bool, count_input: str | None = None,
          remove: tuple[str, ...] | list[str] = (), only_if_fits: bool = False) -> None:
    """`dodas scale NAME NODE COUNT`, as the autoscaler runs it: planned with the
    stored template (dodas's playbooks only when it runs for a server), applied
    at once if the deployment is free (a busy deployment is left for the next poll).
    A `count_input` the policy names as managed (model/managed.py) is set as it is.
    With `remove`, exactly those instances go (services/removal.py) and `count`
    is what is left. With `only_if_fits`, a plan the provider refuses raises
    Refusal, before anything is changed."""
    from dodas.model import managed
    from dodas.model.template import Template
    from dodas.services import deploy, planning, recorded, scaling
    from dodas.tosca.inputs import GivenInput

    template = Template.read(str(recorded.stored_template_of(name)))  # read once: asked, then planned
    if remove:
        given: dict[str, Any] = {}
    elif managed.is_key(count_input):
        given = {count_input: GivenInput(count, "<autoscaler>", 1, 1)}  # type: ignore[dict-item]
    else:
        given = scaling.scale_inputs(template, node, count)
    try:
        dplan = planning.prepare(template, name=name, given=given, offline=True, refresh=False, environment=False,
                                 allow_external_playbooks=trusted, remove=tuple(remove))
    except DodasError as exc:
        if only_if_fits and exc.message.startswith("cannot deploy on "):  # the providers' preflight said no
            raise Refusal(exc.message.replace("\n  ", " ")) from None
        raise
    if not trusted:  # a server's: what its operations fetch goes through dodas.outbound (public addresses)
        dplan.plan.model.fetch_allow = ()
    deploy.apply(dplan, parallelism=PARALLELISM)


# -- the quota ---------------------------------------------------------------------------------
#: cap(name, node_now, cores_each) -> how many more machines of the node the quotas allow (None: no bound)
Cap = Callable[[str, int, int], "int | None"]


def quota_cap(name: str, node_now: int, cores_each: int) -> int | None:
    """A server's cap: the quotas of the deployment's owner, as recorded with
    its requests, over what the owner holds elsewhere (services/tenancy.py)."""
    from dodas.services import tenancy
    return tenancy.machine_room(name, node_now, cores_each)


# -- the loop ----------------------------------------------------------------------------------
def lease_next(owner: str, lease_s: float, exclude: frozenset[str] = frozenset()) -> Any:
    """An elastic deployment nobody scales (a server's workers look for one every few seconds)."""
    return autoscalers.lease(owner, lease_s, exclude=exclude)


def foreground_owner() -> str:
    """The lease owner of `dodas autoscale` in this process ("host:pid:start#autoscale")."""
    from dodas.state import lock
    return f"{lock.me()}#autoscale"


def run(name: str, owner: str, *, stop: threading.Event, trusted: bool = True, lease_s: float = LEASE_S,
        on_decision: Callable[[Any], None] | None = None, once: bool = False, cap: Cap | None = None) -> None:
    """Autoscale `name` until `stop` is set (or after one poll with `once`),
    adding no more than `cap` allows (a server's quotas). Refused when another
    process holds its autoscaler."""
    from dodas.elastic.decide import Memory

    held = autoscalers.lease(owner, lease_s, name=name)
    if held is None:
        who, _ = autoscalers.holder(name)
        if name not in autoscalers.names():
            raise DodasError(f'deployment "{name}" is not elastic (no elasticity policy was applied): nothing to '
                             "autoscale")
        raise DodasError(f'deployment "{name}" is autoscaled by {who or "another process"} already')
    memory, last = Memory.from_json(held.memory), held.last_reason
    try:
        while not stop.is_set():
            interval = _poll_once(name, owner, memory, last, trusted, lease_s, on_decision, cap)
            if interval is None:
                return  # the lease was lost: another process scales it now
            last, wait = interval
            if once:
                return
            stop.wait(wait)
    finally:
        autoscalers.release(name, owner)


def _poll_once(name: str, owner: str, memory: Any, last: str | None, trusted: bool, lease_s: float,
               on_decision: Callable[[Any], None] | None, cap: Cap | None = None) -> tuple[str | None, float] | None:
    from dodas.elastic.decide import Decision

    store = Store()
    try:
        t = target(name)
    except DodasError as exc:
        reason = f"cannot autoscale now: {exc.message}"
        _tell(store, name, reason, last, on_decision, Decision("wait", 0, (), reason))
        return (reason, 5.0) if autoscalers.save(name, owner, lease_s, memory.to_json(), reason) else None
    resumed = _resume_interrupted(t, trusted)
    if resumed is not None:
        _tell(store, name, resumed, last, on_decision, Decision("wait", 0, (), resumed))
        return (resumed, 0.0) if autoscalers.save(name, owner, lease_s, memory.to_json(), resumed) else None
    now = time.time()
    try:
        decision, reader, workload = poll(t, memory, now, cap)
    except Exception as exc:  # noqa: BLE001 - the workload system not answering is a reason, not a crash
        reason = f"cannot read the {t.policy.workload} workload: {_why(exc)}"
        decision, reader, workload = Decision("wait", len(t.instances), (), reason), None, None
    _tell(store, name, decision.reason, last, on_decision, decision)
    for iid in decision.remove:  # status shows them draining, not lost (services/elastic_view.py)
        memory.draining[iid] = now
    if not autoscalers.save(name, owner, lease_s, memory.to_json(), decision.reason):
        return None
    if decision.action in ("add", "remove"):
        with _renewing(name, owner, lease_s, memory):
            try:
                instead = carry_out(t, decision, reader, workload, trusted=trusted)
                for iid in decision.remove:
                    memory.draining.pop(iid, None)
            except DodasError as exc:
                instead = f"scaling {t.policy.node} to {decision.count} failed: {exc.message}"
                for iid in decision.added:  # never made: not booting (the next poll counts the deployment's)
                    memory.booting.pop(iid, None)
            if instead is not None:
                _tell(store, name, instead, None, on_decision, Decision("wait", decision.count, (), instead))
                autoscalers.save(name, owner, lease_s, memory.to_json(), instead)
    return decision.reason, max(1.0, t.policy.poll_interval)


def _resume_interrupted(t: Target, trusted: bool) -> str | None:
    """A scale a dead process left half done (an autoscaler killed mid-apply, a
    server that died): apply the count it recorded again, so that the machine it
    made is configured rather than waited for until its boot times out. The
    engine reconciles: nothing is made twice. Returns what was done, or None."""
    from dodas.engine.states import DeploymentStatus as DS
    from dodas.state import lock

    dep = Store().require(t.name)
    interrupted = dep.status in (DS.UPDATE_IN_PROGRESS.value, DS.CREATE_IN_PROGRESS.value) and bool(
        dep.lock_owner) and lock.is_stale(dep.lock_owner)
    if not interrupted:
        return None
    count = int(dep.inputs.get(t.policy.count_input, len(t.instances)))
    reason = f"finishing the scaling of {t.policy.node} to {count} that a stopped process left unfinished"
    try:
        scale(t.name, t.policy.node, count, trusted=trusted, count_input=t.policy.count_input)
    except DodasError as exc:
        return f"{reason}: it failed: {exc.message}"
    return reason


def _why(exc: BaseException) -> str:
    from dodas.redact import redact
    return redact(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")


def _tell(store: Store, name: str, reason: str, last: str | None, on_decision: Callable[[Any], None] | None,
          decision: Any) -> None:
    """A decision with a new reason is an event; the same sentence poll after poll is not."""
    if reason == last and decision.action not in ("add", "remove"):
        return
    dep = store.get(name)
    if dep is not None:
        store.event(dep.id, "autoscale", reason, level="info")
    if on_decision is not None:
        on_decision(decision)


@contextmanager
def _renewing(name: str, owner: str, lease_s: float, memory: Any) -> Iterator[None]:
    """Keep the lease while a scale runs longer than the lease (a cloud's boot)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(lease_s / 3):
            autoscalers.save(name, owner, lease_s, memory.to_json(), None)
    thread = threading.Thread(target=beat, name=f"autoscale-lease-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def summary(name: str, instances: list[dict[str, Any]], read_workload: bool = True) -> dict[str, Any] | None:
    """What `status` shows of elasticity: the policy, the node's current count
    against min and max, who runs the loop, the last decisions, and each
    instance's state (services/elastic_view.py, from one read of the workload
    unless `read_workload` is False); None for a deployment without a policy."""
    from dodas.elastic.policy import policies

    store = Store()
    dep = store.require(name)
    if name not in autoscalers.names():
        return None
    found = policies(_stored_plan(dep))
    if not found:
        return None
    p = found[0]
    who, until = autoscalers.holder(name)
    decisions = [{"time": e.time.isoformat(), "reason": e.message} for e in store.events(dep.id)
                 if e.phase == "autoscale"][-5:]
    current = sum(1 for i in instances if i["node"] == p.node and i["state"] not in ("deleting", "deleted"))
    from dodas.services import elastic_view
    nodes, problem = elastic_view.read(name, autoscalers.stored_memory(name)) if read_workload else ([], None)
    return {"policy": p.to_json(), "current": current, "min": p.min_instances, "max": p.max_instances,
            "autoscaler": who, "lease_until": until.isoformat() if until else None, "decisions": decisions,
            "nodes": nodes, "workload_problem": problem}
