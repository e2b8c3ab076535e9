"""What `up` would change: a plan compared with what the state recorded.

Pure comparison, like the rest of `plan/`: the caller (services/planning.py)
gathers what was recorded of each instance and what the template now asks of
it (its configuration fingerprint and that fingerprint's named parts), and this
module says, per instance, create / reconfigure / restart / delete and why.

The rules are the engine's own (engine/engine.py): a compute instance is
created when no machine is recorded ready for it; a software instance is run
again when it never finished, when its fingerprint changed, or when a service it
started is dead; instances no longer in the plan are deleted. Keeping the two in
agreement is what makes the plan a promise; tests/test_plan_diff.py checks it by
applying each plan and comparing what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dodas.model.deployment import Instance
from dodas.plan.plan import Plan

CREATE, RECONFIGURE, RESTART, DELETE = "create", "reconfigure", "restart", "delete"
ACTIONS = (CREATE, RECONFIGURE, RESTART, DELETE)
#: compute states in which the machine exists (engine.states.COMPUTE_READY, by value)
MACHINE_READY = {"created", "started"}
#: a compute row whose machine a refresh found gone (engine.states.InstanceState.MISSING)
MISSING = "missing"


@dataclass
class Recorded:
    """What the state says of one instance."""

    kind: str
    state: str
    config_hash: str | None = None
    #: the fingerprint's named parts when it last ran (absent in older records)
    parts: dict[str, str] = field(default_factory=dict)
    #: services recorded for it that are not running (found by a check or a refresh)
    dead_services: list[str] = field(default_factory=list)


@dataclass
class Desired:
    """What the template asks of one software instance now."""

    fingerprint: str | None = None
    parts: dict[str, str] = field(default_factory=dict)
    #: why the fingerprint cannot be known before apply (a machine not made yet)
    unknown: str | None = None


@dataclass(frozen=True)
class Change:
    instance: str
    node: str
    kind: str
    action: str
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "node": self.node, "kind": self.kind, "action": self.action,
                "reasons": list(self.reasons)}


def compare(plan: Plan, recorded: dict[Instance, Recorded], desired: dict[Instance, Desired]) -> list[Change]:
    """Every change `up` would make, in the order it would make them (wave
    order, deletions first, as the engine removes before it creates)."""
    out: list[Change] = []
    for inst in sorted((i for i in recorded if i not in plan.instances), key=lambda i: (i.node, i.index)):
        rec = recorded[inst]
        why = _why_deleted(plan, inst)
        out.append(Change(inst.id, inst.node, rec.kind, DELETE, (why,)))
    made: set[Instance] = set()  # computes that will be (re)created
    for wave in plan.waves:
        for inst in wave:
            p = plan.instances[inst]
            rec = recorded.get(inst)
            if p.node.is_compute:
                change = _compute(inst, rec)
                if change is not None:
                    made.add(inst)
                    out.append(change)
                continue
            compute = _compute_of(plan, inst)
            change = _software(inst, rec, desired.get(inst, Desired()), compute if compute in made else None)
            if change is not None:
                out.append(change)
    return out


def _why_deleted(plan: Plan, inst: Instance) -> str:
    if inst.node not in plan.model.nodes:
        return "its node is no longer in the template"
    host = plan.model.host_compute(inst.node)
    if host is not None and Instance(host, inst.index) in plan.removed:
        return (f"{plan.removed[Instance(host, inst.index)]} ({Instance(host, inst.index).id}); the other "
                f"instances of {host} keep their indexes")
    return f"{inst.node} now has {_count(plan.model.instance_count(inst.node), 'instance')}"


def _compute(inst: Instance, rec: Recorded | None) -> Change | None:
    if rec is None:
        return Change(inst.id, inst.node, "compute", CREATE, ("new instance",))
    if rec.state == MISSING:
        return Change(inst.id, inst.node, "compute", CREATE, ("its machine was deleted outside dodas "
                                                              "(found by refresh)",))
    if rec.state not in MACHINE_READY:
        return Change(inst.id, inst.node, "compute", CREATE, (f"its last creation did not finish (state "
                                                              f"{rec.state})",))
    return None


def _software(inst: Instance, rec: Recorded | None, want: Desired, remade: Instance | None) -> Change | None:
    def change(action: str, *why: str) -> Change:
        return Change(inst.id, inst.node, "software", action, tuple(why))

    if rec is None:
        return change(CREATE, "new instance")
    if remade is not None:
        return change(RECONFIGURE, f"its machine {remade.id} is created again")
    if rec.state != "started":
        return change(RECONFIGURE, f"its last configuration did not finish (state {rec.state})")
    if want.unknown is not None:
        return change(RECONFIGURE, f"may change: {want.unknown} (known after apply)")
    if want.fingerprint != rec.config_hash:
        return change(RECONFIGURE, *changed_parts(rec.parts, want.parts))
    if rec.dead_services:
        return change(RESTART, *(f"service {s} is not running" for s in rec.dead_services))
    return None


def changed_parts(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The named parts that differ, as reasons: "property worker_cores changed"."""
    if not before:  # recorded before dodas kept the parts
        return ["its configuration changed"]
    out = [f"{k} changed" for k in sorted(after) if k in before and before[k] != after[k]]
    out += [f"{k} added" for k in sorted(after) if k not in before]
    out += [f"{k} removed" for k in sorted(before) if k not in after]
    return out or ["its configuration changed"]


def _compute_of(plan: Plan, inst: Instance) -> Instance | None:
    host = plan.model.host_compute(inst.node)
    return Instance(host, inst.index) if host else None


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary(changes: list[Change]) -> dict[str, int]:
    """How many instances each action touches: `Plan: 2 to create, ...`."""
    return {a: sum(1 for c in changes if c.action == a) for a in ACTIONS}
