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
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dodas.errors import DodasError
from dodas.services.autoscale_target import (DRAIN_TIMEOUT_S, HTCONDOR_TOKEN_LIFETIME_S,  # noqa: F401 - its API
                                             HTCONDOR_TOKEN_SCOPES, Target, _instances, _stored_plan,
                                             _workload_access, htcondor_access, target)
from dodas.state import autoscalers
from dodas.state.store import Store

LEASE_S = 30.0
PARALLELISM = 8


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
    hand = autoscalers.controls(t.name)
    decision = decide(t.policy, workload, t.instances, memory, now, cores_per_worker=t.cores_per_worker,
                      quota_left=left, deployed=t.deployed, disabled=frozenset(hand["disabled"]),
                      drain=frozenset(hand["drain"]))
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
                finished = _drain(reader, worker)
                Store().event(t.dep_id, "autoscale", f"{iid} drained ({t.policy.workload} worker {worker.id}): "
                              + ("nothing runs there any more" if finished else
                                 f"still busy after {DRAIN_TIMEOUT_S:.0f} s, removed anyway"), level="info")
        pause_at("drained")
        scale(t.name, t.policy.node, decision.count, trusted=trusted, count_input=t.policy.count_input,
              remove=tuple(i for i in decision.remove if i not in decision.replaced), replace=decision.replaced)
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


def pause_at(step: str) -> None:
    """A fault-injection point for the tests that kill an autoscaler at each step of
    a scaling (tests/test_autoscale_kill.py): with DODAS_AUTOSCALE_PAUSE=STEP the
    loop says "paused at STEP" on stderr and stops there for good (its lease still
    renewed), to be killed. Steps: decided (told and stored, nothing done),
    drained (the workers decommissioned, the deployment not changed yet), done
    (the deployment changed, the loop's memory not saved after it)."""
    if os.environ.get("DODAS_AUTOSCALE_PAUSE") == step:
        print(f"paused at {step}", file=sys.stderr, flush=True)
        threading.Event().wait()


class Refusal(DodasError):
    """The provider's preflight refused the planned count (capacity, quota): fewer may fit."""


def _drain(reader: Any, worker: Any) -> bool:
    """Drain the worker (its running work finishes, nothing new starts); False if it is still busy
    after DRAIN_TIMEOUT_S (what still runs there is given up: the reason said the worker was idle)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while not asyncio.run(reader.drain(worker)):
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def scale(name: str, node: str, count: int, *, trusted: bool, count_input: str | None = None,
          remove: tuple[str, ...] | list[str] = (), only_if_fits: bool = False,
          replace: tuple[str, ...] = ()) -> None:
    """`dodas scale NAME NODE COUNT`, as the autoscaler runs it: planned with the
    stored template (dodas's playbooks only when it runs for a server), applied
    at once if the deployment is free (a busy deployment is left for the next poll).
    A `count_input` the policy names as managed (model/managed.py) is set as it is.
    With `remove`, exactly those instances go (services/removal.py) and `count`
    is what is left; `replace` go too, each for a new one (the count stays).
    With `only_if_fits`, a plan the provider refuses raises Refusal, before
    anything is changed."""
    from dodas.model import managed
    from dodas.model.template import Template
    from dodas.services import deploy, planning, recorded, scaling
    from dodas.tosca.inputs import GivenInput

    template = Template.read(str(recorded.stored_template_of(name)))  # read once: asked, then planned
    if remove or replace:
        given: dict[str, Any] = {}
    elif managed.is_key(count_input):
        given = {count_input: GivenInput(count, "<autoscaler>", 1, 1)}  # type: ignore[dict-item]
    else:
        given = scaling.scale_inputs(template, node, count)
    try:
        dplan = planning.prepare(template, name=name, given=given, offline=True, refresh=False, environment=False,
                                 allow_external_playbooks=trusted, remove=tuple(remove), replace=tuple(replace))
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
    return f"{lock.process()}#autoscale"


def run(name: str, owner: str, *, stop: threading.Event, trusted: bool = True, lease_s: float = LEASE_S,
        on_decision: Callable[[Any], None] | None = None, once: bool = False, cap: Cap | None = None) -> str | None:
    """Autoscale `name` until `stop` is set (or after one poll with `once`),
    adding no more than `cap` allows (a server's quotas). Refused when another
    process holds its autoscaler. Returns why it stopped on its own (its lease
    lost: the deployment destroyed, or another process took over), else None."""
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
                # the lease was lost: another process scales it now, or the deployment was destroyed
                if name not in autoscalers.names():
                    return f'deployment "{name}" is no longer elastic (destroyed): nothing to autoscale'
                who, _ = autoscalers.holder(name)
                return f"{who or 'another process'} autoscales {name} now"
            last, wait = interval
            if once:
                return
            stop.wait(wait)
    finally:
        autoscalers.release(name, owner)


def _poll_once(name: str, owner: str, memory: Any, last: str | None, trusted: bool, lease_s: float,
               on_decision: Callable[[Any], None] | None, cap: Cap | None = None) -> tuple[str | None, float] | None:
    from dodas.elastic.decide import Decision

    def record(decision: Any, reason: str, last_: str | None) -> bool:
        return _record(name, owner, lease_s, memory, decision, reason, last_, on_decision)
    try:
        t = target(name)
    except DodasError as exc:
        reason = f"cannot autoscale now: {exc.message}"
        return (reason, 5.0) if record(Decision("wait", 0, (), reason), reason, last) else None
    resumed = _resume_interrupted(t, trusted)
    if resumed is not None:
        return (resumed, 0.0) if record(Decision("wait", 0, (), resumed), resumed, last) else None
    now = time.time()
    try:
        decision, reader, workload = poll(t, memory, now, cap)
    except Exception as exc:  # noqa: BLE001 - the workload system not answering is a reason, not a crash
        reason = f"cannot read the {t.policy.workload} workload: {_why(exc)}"
        decision, reader, workload = Decision("wait", len(t.instances), (), reason), None, None
    for iid in decision.remove:  # status shows them draining, not lost (services/elastic_view.py)
        memory.draining[iid] = now
    if decision.action in ("add", "remove"):
        decision_key = scaling_key(t, decision)
        told, memory.told = memory.told == decision_key, decision_key
        if not _record(name, owner, lease_s, memory, decision, decision.reason, last, on_decision, told=told):
            return None
        with _renewing(name, owner, lease_s, memory):
            try:
                pause_at("decided")
                instead = carry_out(t, decision, reader, workload, trusted=trusted)
                pause_at("done")
                for iid in decision.remove:
                    memory.draining.pop(iid, None)
                    for inst in (i for i in t.instances if i.id == iid):  # a later machine may get its address
                        memory.idle_since.pop(inst.address, None)
                if decision.remove:  # a later instance at the same index starts with nothing set by hand
                    autoscalers.control(name, list(decision.remove), None, now)
            except DodasError as exc:
                instead = f"scaling {t.policy.node} to {decision.count} failed: {exc.message}"
                for iid in decision.added:  # never made: not booting (the next poll counts the deployment's)
                    memory.booting.pop(iid, None)
        memory.told = None  # carried out (or failed, and said so): the next decision is a new one
        if instead is not None:
            record(Decision("wait", decision.count, (), instead), instead, None)
        else:
            autoscalers.save(name, owner, lease_s, memory.to_json(), None)
    elif not record(decision, decision.reason, last):
        return None
    return decision.reason, max(1.0, t.policy.poll_interval)


def scaling_key(t: Target, decision: Any) -> str:
    """What makes a scaling the same one: the node's count before and after, the
    instances removed, and the deployment's record unchanged since (no apply, no
    lock taken). A process taking over after one was told but not carried out
    decides the same on the same record; a later scaling, even to the same
    counts, comes after the record changed."""
    now = sum(1 for i in t.instances if i.state not in ("deleting", "deleted"))
    return f"{decision.action} {t.policy.node} {now}->{decision.count} {','.join(decision.remove)} @{t.generation}"


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


def _record(name: str, owner: str, lease_s: float, memory: Any, decision: Any, reason: str, last: str | None,
            on_decision: Callable[[Any], None] | None, told: bool = False) -> bool:
    """Store the loop's memory and tell the decision (an event, with the memory in
    one transaction: autoscalers.save) unless it was told already: the same wait
    sentence poll after poll, or a scaling a previous holder told (`told`).
    False when the lease is lost: nothing stored, nothing told."""
    new = not told if decision.action in ("add", "remove") else reason != last
    dep = Store().get(name) if new else None
    if not autoscalers.save(name, owner, lease_s, memory.to_json(), reason,
                            event=(dep.id, reason) if dep is not None else None):
        return False
    if on_decision is not None and (new or decision.action in ("add", "remove")):
        on_decision(decision)
    return True


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


def _node_states(name: str) -> tuple[list[dict[str, Any]], str | None]:
    from dodas.services import elastic_view

    try:
        t = target(name)
    except DodasError as exc:
        return [], exc.message
    return elastic_view.read_target(t, autoscalers.stored_memory(name))


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
    nodes, problem = _node_states(name) if read_workload else ([], None)
    return {"policy": p.to_json(), "current": current, "min": p.min_instances, "max": p.max_instances,
            "autoscaler": who, "lease_until": until.isoformat() if until else None, "decisions": decisions,
            "nodes": nodes, "workload_problem": problem}
