"""Scaling decisions: from a policy, a workload reading and the node's instances,
the next count of the elastic node and a sentence saying why. No I/O.

Everything the autoscaler must remember between polls (since when a worker is
idle, which instances are still booting, failed boots, the back-off) lives in a
`Memory` that `decide` updates in place and the loop stores as JSON, so that a
restarted autoscaler decides as the one that stopped would have.

dodas scales a node by reconciling its count, which removes the highest indexes:
a scale-down can therefore only take workers from the end, and a busy worker at
the end stops it (the reason says so). Timings come from `now`, never the clock,
so tests replay polls at any pace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dodas.elastic.workload import WorkerLoad, Workload, plural

if TYPE_CHECKING:
    from dodas.elastic.policy import Policy

#: dodas instance states of a machine that failed or vanished: it will not boot any more
FAILED_STATES = frozenset({"error", "missing"})
#: states of an instance on its way out: not counted at all
GONE_STATES = frozenset({"deleting", "deleted"})
#: failed boots in a row after which the autoscaler stops adding workers for a while
MAX_FAILURES = 3
#: the first back-off is this many cool-downs (or poll intervals, if longer); each further failure doubles it
BACKOFF_COOLDOWNS = 5
#: what waits, in each workload's words
REQUEST_WORD = {"spark": "application", "kubernetes": "pod", "htcondor": "job"}


@dataclass(frozen=True)
class Instance:
    """One instance of the elastic node, as dodas's state has it."""

    id: str                 # "worker_hosts[2]"
    index: int
    state: str              # dodas's instance state: creating, created, configuring, started, error...
    address: str = ""       # private address (what the workload system usually reports)
    other_addresses: tuple[str, ...] = ()  # public address, host name: also matched

    def matches(self, worker: WorkerLoad) -> bool:
        return bool(worker.host) and (worker.host == self.address or worker.host in self.other_addresses)


@dataclass
class Memory:
    """What the loop remembers between polls; serialisable to JSON for the state DB."""

    idle_since: dict[str, float] = field(default_factory=dict)   # worker host -> first seen idle
    booting: dict[str, float] = field(default_factory=dict)      # instance id -> when its creation was asked
    last_decision_at: float | None = None
    failures: int = 0                                             # failed boots in a row
    backoff_until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"idle_since": dict(self.idle_since), "booting": dict(self.booting),
                "last_decision_at": self.last_decision_at, "failures": self.failures,
                "backoff_until": self.backoff_until}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Memory:
        """A memory from what `to_json` stored (an empty one from None: a first start)."""
        data = data or {}
        return cls(idle_since={str(k): float(v) for k, v in (data.get("idle_since") or {}).items()},
                   booting={str(k): float(v) for k, v in (data.get("booting") or {}).items()},
                   last_decision_at=data.get("last_decision_at"), failures=int(data.get("failures") or 0),
                   backoff_until=data.get("backoff_until"))


@dataclass(frozen=True)
class Decision:
    """What to do now: the node's new count and, for a scale-down, which instances go."""

    action: str              # "none" | "add" | "remove" | "wait"
    count: int               # the new instance count of the policy's node
    remove: tuple[str, ...]  # instance ids to drain then remove (always the highest indexes)
    reason: str


def _secs(x: float) -> str:
    return f"{x:.0f} s"


def _instance_id(node: str, index: int) -> str:
    return f"{node}[{index}]"


def _observe(policy: Policy, workload: Workload, instances: list[Instance], memory: Memory,
             now: float) -> tuple[dict[str, WorkerLoad | None], list[Instance], int]:
    """Match instances to workers and update the memory: boots that ended, idle clocks.

    Returns each instance's worker (None when the reader does not list it), the
    instances whose boot failed (state error, or not up within boot_timeout), and
    how many asked-for instances dodas has not recorded yet.
    """
    worker_of: dict[str, WorkerLoad | None] = {}
    failed: list[Instance] = []
    present = {i.id for i in instances}
    for inst in instances:
        w = next((w for w in workload.workers if inst.matches(w)), None)
        worker_of[inst.id] = w
        if w is not None and w.alive:
            if inst.id in memory.booting:       # it came up: boots work again
                del memory.booting[inst.id]
                memory.failures = 0
                memory.backoff_until = None
        elif w is None or not _draining(w):
            # from the ask (or from the first time it is seen, e.g. created by hand) until it is alive
            memory.booting.setdefault(inst.id, now)
            if inst.state in FAILED_STATES or now - memory.booting[inst.id] >= policy.boot_timeout:
                failed.append(inst)
        if w is not None and w.alive and not w.busy:
            memory.idle_since.setdefault(w.host, now)
        elif w is not None and (w.busy or not _draining(w)):
            memory.idle_since.pop(w.host, None)
    # asks dodas has not recorded yet still count as booting, until their own boot timeout
    pending = 0
    for iid, since in list(memory.booting.items()):
        if iid in present:
            continue
        if now - since >= policy.boot_timeout:
            del memory.booting[iid]
        else:
            pending += 1
    hosts = {w.host for w in workload.workers}
    for host in [h for h in memory.idle_since if h not in hosts]:
        del memory.idle_since[host]
    return worker_of, failed, pending


def _draining(w: WorkerLoad) -> bool:
    """A worker being removed gracefully (Spark DECOMMISSIONED, a cordoned node, a draining startd)."""
    return w.state.upper() in {"DECOMMISSIONED", "DECOMMISSIONING", "CORDONED", "DRAINING", "DRAINED"}


def _fail(policy: Policy, memory: Memory, now: float, n: int) -> str:
    """Count n failed boots; back off after MAX_FAILURES in a row. Returns the words to add to the reason."""
    memory.failures += n
    if memory.failures < MAX_FAILURES:
        return f"{plural(memory.failures, 'failed boot')} in a row"
    base = BACKOFF_COOLDOWNS * max(policy.cooldown, policy.poll_interval, 1)
    wait = base * 2 ** (memory.failures - MAX_FAILURES)
    memory.backoff_until = now + wait
    return f"{memory.failures} failed boots in a row: no workers added for {_secs(wait)}"


def decide(policy: Policy, workload: Workload, instances: list[Instance], memory: Memory, now: float, *,
           cores_per_worker: int, quota_left: int | None = None) -> Decision:
    """The next step for the policy's node. Updates `memory` in place (its only side effect).

    Order: a boot that timed out is cleaned up first; then a count below min is
    brought back to it; then work that waits may add workers; otherwise idle
    workers at the end may be removed.
    """
    cores_per_worker = max(1, cores_per_worker)
    live = sorted((i for i in instances if i.state not in GONE_STATES), key=lambda i: i.index)
    worker_of, failed, pending = _observe(policy, workload, live, memory, now)
    count = len(live) + pending
    word = REQUEST_WORD.get(policy.workload, "request")
    waits = (f"{plural(len(workload.waiting), word)} waiting for {plural(workload.waiting_cores, 'core')}"
             if workload.waiting else f"{plural(workload.waiting_cores, 'core')} of work waiting")
    in_cooldown = memory.last_decision_at is not None and now - memory.last_decision_at < policy.cooldown

    # 1. boots that failed: remove those at the end (dodas removes the highest indexes)
    if failed:
        failed_ids = {i.id for i in failed}
        tail: list[Instance] = []
        for inst in reversed(live):
            if inst.id not in failed_ids or count - len(tail) <= 0:
                break
            tail.append(inst)
        for inst in failed:                      # restart the clock: one failure counted per timeout
            memory.booting[inst.id] = now
        late = f"not up after {_secs(policy.boot_timeout)}"
        what = ", ".join(f"{i.id} ({'in error' if i.state in FAILED_STATES else late})" for i in failed)
        counted = _fail(policy, memory, now, len(failed))
        if tail:
            for inst in tail:
                memory.booting.pop(inst.id, None)
            memory.last_decision_at = now
            return Decision("remove", count - len(tail), tuple(i.id for i in tail),
                            f"boot timed out for {what}; removing {plural(len(tail), 'worker')} ({counted})")
        return Decision("none", count, (), f"boot timed out for {what}, but dodas removes workers from the end "
                                           f"and {live[-1].id} is not one of them ({counted})")

    booting = len(memory.booting)

    # 2. below min (a template's count under it, or a failed boot removed): back up to min
    if count < policy.min_instances:
        below = f"{plural(count, 'worker')}, below min {policy.min_instances}"
        if memory.backoff_until is not None and now < memory.backoff_until:
            return Decision("wait", count, (), f"{below}; backing off after {memory.failures} failed boots "
                                               f"for another {_secs(memory.backoff_until - now)}")
        add = min(policy.min_instances - count, policy.max_booting - booting,
                  quota_left if quota_left is not None else policy.min_instances)
        if in_cooldown or add <= 0:
            return Decision("wait", count, (), f"{below}; " + ("cooling down" if in_cooldown else
                                                               f"{plural(booting, 'worker')} booting already"))
        for index in range(count, count + add):
            memory.booting[_instance_id(policy.node, index)] = now
        memory.last_decision_at = now
        return Decision("add", count + add, (), f"{below}; adding {plural(add, 'worker')}")

    # 3. work waits: add workers
    if workload.waiting_cores > 0:
        covered = booting * cores_per_worker
        if covered >= workload.waiting_cores:
            return Decision("wait", count, (), f"{waits}; {plural(booting, 'worker')} booting "
                                               f"({covered} cores) will cover it")
        if memory.backoff_until is not None and now < memory.backoff_until:
            return Decision("wait", count, (), f"{waits}; backing off after {memory.failures} failed boots "
                                               f"for another {_secs(memory.backoff_until - now)}")
        if in_cooldown:
            return Decision("wait", count, (), f"{waits}; cooling down ({_secs(policy.cooldown)} between decisions, "
                                               f"{_secs(now - memory.last_decision_at)} since the last)")
        need = math.ceil((workload.waiting_cores - covered) / cores_per_worker)
        limits = {"max": policy.max_instances - count, "booting": policy.max_booting - booting}
        if quota_left is not None:
            limits["quota"] = quota_left
        add = max(0, min(need, *limits.values()))
        if add == 0:
            if limits["max"] <= 0:
                return Decision("none", count, (), f"at max {policy.max_instances}: {waits}")
            if limits["booting"] <= 0:
                return Decision("wait", count, (), f"{waits}; {plural(booting, 'worker')} booting already "
                                                   f"({policy.max_booting} at most)")
            return Decision("none", count, (), f"{waits}; the quota allows no more instances")
        for index in range(count, count + add):
            memory.booting[_instance_id(policy.node, index)] = now
        memory.last_decision_at = now
        bounds = f"max {policy.max_instances}, {policy.max_booting} booting at most"
        if quota_left is not None:
            bounds += f", quota {quota_left}"
        short = f"; {need - add} more needed" if add < need else ""
        return Decision("add", count + add, (),
                        f"{waits}; adding {plural(add, 'worker')} of {plural(cores_per_worker, 'core')} "
                        f"({bounds}){short}")

    # 4. nothing waits: remove idle workers from the end
    removable: list[tuple[Instance, float]] = []
    blocker = ""
    for inst in reversed(live):
        if count - len(removable) <= policy.min_instances:
            break
        w = worker_of.get(inst.id)
        if w is None or inst.id in memory.booting:
            blocker = f"{inst.id} at the end is still booting"
            break
        if w.busy:
            blocker = f"{inst.id} at the end is busy"
            break
        idle_for = now - memory.idle_since.get(w.host, now)
        if not _draining(w) and idle_for < policy.idle_time:
            blocker = f"{inst.id} at the end has been idle for {_secs(idle_for)} of {_secs(policy.idle_time)}"
            break
        removable.append((inst, idle_for))
    idle_elsewhere = [i.id for i in live[: len(live) - len(removable)]
                      if (w := worker_of.get(i.id)) is not None and w.alive and not w.busy
                      and now - memory.idle_since.get(w.host, now) >= policy.idle_time]
    if not removable:
        if blocker and idle_elsewhere and count > policy.min_instances:
            return Decision("none", count, (), f"{blocker}: dodas removes workers from the end, so the idle "
                                               f"{', '.join(idle_elsewhere)} stays")
        return Decision("none", count, (), "nothing waits" + (f"; {blocker}" if blocker else "")
                        + (f" (at min {policy.min_instances})" if count <= policy.min_instances else ""))
    if in_cooldown:
        return Decision("wait", count, (), f"{plural(len(removable), 'idle worker')} to remove; cooling down "
                                           f"({_secs(policy.cooldown)} between decisions)")
    memory.last_decision_at = now
    ids = tuple(i.id for i, _ in removable)
    least = min(t for _, t in removable)
    if len(ids) == 1:
        why = f"{ids[0]} idle for {_secs(least)} (idle time {_secs(policy.idle_time)}); removing it"
    else:
        why = (f"{', '.join(ids)} idle for {_secs(least)} or more (idle time {_secs(policy.idle_time)}); "
               f"removing {plural(len(ids), 'worker')}")
    return Decision("remove", count - len(ids), ids, f"{why} (min {policy.min_instances})"
                    + (f"; {blocker}" if blocker else ""))
