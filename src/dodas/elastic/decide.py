"""Scaling decisions: from a policy, a workload reading and the node's instances,
the next count of the elastic node and a sentence saying why. No I/O.

Everything the autoscaler must remember between polls (since when a worker is
idle, which instances are still booting, failed boots, the back-off) lives in a
`Memory` that `decide` updates in place and the loop stores as JSON, so that a
restarted autoscaler decides as the one that stopped would have.

A scale-down names the instances it removes (services/removal.py): the idle
workers that have been idle longest, wherever they are, never one the user
disabled, and never so many that fewer than `min_instances` workers stay alive
in the workload's own view (a worker the workload reports DEAD or drained does
not count as alive, whatever dodas's state says). A worker the workload reports
DEAD while dodas has it started is removed at once, and the minimum then brings
a new one: that is how a lost worker is replaced. The count decided from is the
deployment's (`deployed`), never one the autoscaler only meant to reach.
Timings come from `now`, never the clock, so tests replay polls at any pace.
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

    idle_since: dict[str, float] = field(default_factory=dict)   # worker host -> idle since (workload.py)
    booting: dict[str, float] = field(default_factory=dict)      # instance id -> when its creation was asked
    last_decision_at: float | None = None
    failures: int = 0                                             # failed boots in a row
    backoff_until: float | None = None
    draining: dict[str, float] = field(default_factory=dict)    # instance id -> when the autoscaler drained it
    #: the scaling decided and told but not yet carried out (services/autoscale.py, `scaling_key`): a
    #: process that takes over and decides the same again carries it out without telling it twice
    told: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"idle_since": dict(self.idle_since), "booting": dict(self.booting),
                "last_decision_at": self.last_decision_at, "failures": self.failures,
                "backoff_until": self.backoff_until, "draining": dict(self.draining), "told": self.told}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Memory:
        """A memory from what `to_json` stored (an empty one from None: a first start)."""
        data = data or {}
        return cls(idle_since={str(k): float(v) for k, v in (data.get("idle_since") or {}).items()},
                   booting={str(k): float(v) for k, v in (data.get("booting") or {}).items()},
                   last_decision_at=data.get("last_decision_at"), failures=int(data.get("failures") or 0),
                   backoff_until=data.get("backoff_until"),
                   draining={str(k): float(v) for k, v in (data.get("draining") or {}).items()},
                   told=data.get("told"))


@dataclass(frozen=True)
class Decision:
    """What to do now: the node's new count and, for a scale-down, which instances go."""

    action: str              # "none" | "add" | "remove" | "wait"
    count: int               # the new instance count of the policy's node
    remove: tuple[str, ...]  # instance ids to drain then remove (the chosen ones)
    reason: str
    #: for an "add": the ids the new instances get (the lowest free indexes, as model/indexes.py fills them)
    added: tuple[str, ...] = ()
    #: for a "remove": those of `remove` replaced by a new machine at once (lost workers the minimum needs)
    replaced: tuple[str, ...] = ()


def _secs(x: float) -> str:
    return f"{x:.0f} s"


def _instance_id(node: str, index: int) -> str:
    return f"{node}[{index}]"


def _new_ids(node: str, live: list[Instance], n: int) -> tuple[str, ...]:
    """The ids `n` new instances get: the lowest indexes no live instance has
    (model/indexes.reconcile fills a count's new instances the same way)."""
    taken = {i.index for i in live}
    free = (i for i in range(len(taken) + n + 1) if i not in taken)
    return tuple(_instance_id(node, next(free)) for _ in range(n))


def _dead(w: WorkerLoad | None) -> bool:
    """A worker the workload lists as lost (Spark DEAD, a NotReady node, a startd gone)."""
    return w is not None and w.state.upper() in {"DEAD", "LOST", "NOTREADY"}


def _observe(policy: Policy, workload: Workload, instances: list[Instance], memory: Memory,
             now: float, deployed: int | None = None) -> tuple[dict[str, WorkerLoad | None], list[Instance],
                                                             list[Instance], int]:
    """Match instances to workers and update the memory: boots that ended, idle clocks.

    Returns each instance's worker (None when the reader does not list it), the
    instances whose boot failed (state error, or not up within boot_timeout),
    those the workload reports lost (DEAD) after they had come up, and how many
    instances of the deployment's count dodas has not recorded yet (`deployed`:
    the deployment's count; without it, the asks remembered).
    """
    worker_of: dict[str, WorkerLoad | None] = {}
    failed: list[Instance] = []
    lost: list[Instance] = []
    present = {i.id for i in instances}
    for inst in instances:
        w = next((w for w in workload.workers if inst.matches(w)), None)
        worker_of[inst.id] = w
        if _dead(w) and inst.id not in memory.booting and inst.state not in FAILED_STATES:
            lost.append(inst)
            memory.idle_since.pop(w.host, None)  # type: ignore[union-attr]
            continue
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
            # the workload's own word on when it last had work (work may have come and gone between
            # two polls), else from the first poll that saw it idle; never in the future (clocks differ)
            if w.idle_since is not None:
                memory.idle_since[w.host] = min(w.idle_since, now)
            else:
                memory.idle_since.setdefault(w.host, now)
        elif w is not None and (w.busy or not _draining(w)):
            memory.idle_since.pop(w.host, None)
    # asks dodas has not recorded yet still count as booting, until their own boot timeout; with the
    # deployment's count known, only as many as it has beyond its recorded instances (an ask the provider
    # refused is forgotten: the count never grew)
    pending = 0
    room = None if deployed is None else max(0, deployed - len(instances))
    for iid, since in sorted(memory.booting.items(), key=lambda kv: kv[1]):
        if iid in present:
            continue
        if now - since >= policy.boot_timeout or (room is not None and pending >= room):
            del memory.booting[iid]
        else:
            pending += 1
    if room is not None:
        pending = room
    hosts = {w.host for w in workload.workers}
    for host in [h for h in memory.idle_since if h not in hosts]:
        del memory.idle_since[host]
    # a removal finished by another process (a take-over resuming it): a later instance at that index
    # starts with nothing of it
    for iid in [i for i in memory.draining if i not in present]:
        del memory.draining[iid]
    return worker_of, failed, lost, pending


def _named(waiting: tuple[str, ...], shown: int = 3) -> str:
    """What waits, by name, for the reason of an addition (the first few: a reason stays one line)."""
    if not waiting:
        return ""
    more = f" and {len(waiting) - shown} more" if len(waiting) > shown else ""
    return f"; waiting: {'; '.join(waiting[:shown])}{more}"


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
           cores_per_worker: int, quota_left: int | None = None, deployed: int | None = None,
           disabled: frozenset[str] = frozenset(), drain: frozenset[str] = frozenset()) -> Decision:
    """The next step for the policy's node. Updates `memory` in place (its only side effect).

    Order: boots that failed and workers the workload lost are removed first
    (exactly those); then a count below min is brought back to it; then work
    that waits may add workers; otherwise the idle workers chosen may be removed.
    `deployed` is the deployment's count of the node (what its plan has);
    `disabled` the instance ids never chosen for removal, `drain` those a user
    asked to drain and remove (`dodas autoscale NAME --drain`): they go first.
    """
    cores_per_worker = max(1, cores_per_worker)
    live = sorted((i for i in instances if i.state not in GONE_STATES), key=lambda i: i.index)
    worker_of, failed, lost, pending = _observe(policy, workload, live, memory, now, deployed)
    # drained without the autoscaler asking and not set aside by hand (decommissioned behind its back,
    # or enabled again after a disable): lost too, as status says (services/elastic_view.py); a
    # decommissioned Spark worker never takes work again
    lost += [i for i in live if (w := worker_of.get(i.id)) is not None and _draining(w) and i not in lost
             and i.id not in memory.draining and i.id not in disabled and i.state in ("created", "started")]
    count = len(live) + pending
    word = REQUEST_WORD.get(policy.workload, "request")
    waits = (f"{plural(len(workload.waiting), word)} waiting for {plural(workload.waiting_cores, 'core')}"
             if workload.waiting else f"{plural(workload.waiting_cores, 'core')} of work waiting")
    in_cooldown = memory.last_decision_at is not None and now - memory.last_decision_at < policy.cooldown

    # 1. boots that failed, workers lost: remove exactly those (a new one comes by the rules below)
    if failed or lost:
        for inst in failed + lost:
            memory.booting.pop(inst.id, None)
        late = f"not up after {_secs(policy.boot_timeout)}"
        parts = []
        if failed:
            what = ", ".join(f"{i.id} ({'in error' if i.state in FAILED_STATES else late})" for i in failed)
            parts.append(f"boot timed out for {what}")
        if lost:
            parts.append(", ".join(f"{i.id} is {worker_of[i.id].state} in the {policy.workload} "  # type: ignore[union-attr]
                                   f"workload while dodas has it {i.state}" for i in lost))
        counted = f" ({_fail(policy, memory, now, len(failed))})" if failed else ""
        gone = failed + lost
        memory.last_decision_at = now
        # lost workers the minimum needs are replaced in the same apply (a new machine at a new index, as
        # `up` does): removed first, the count could go below what the template allows (the only worker)
        renew = tuple(i.id for i in lost[:max(0, policy.min_instances - (count - len(gone)))])
        doing = f"removing {plural(len(gone) - len(renew), 'worker')}" if len(gone) > len(renew) else ""
        if renew:
            doing = "; ".join(x for x in (doing, f"replacing {', '.join(renew)} (min {policy.min_instances})") if x)
        return Decision("remove", count - len(gone) + len(renew), tuple(i.id for i in gone),
                        f"{'; '.join(parts)}; {doing}{counted}", replaced=renew)

    # 1b. workers a user asked to drain: drained and removed, busy or not (their work finishes first)
    asked = tuple(i.id for i in reversed(live) if i.id in drain)
    if asked and not in_cooldown:
        memory.last_decision_at = now
        renew = asked[:max(0, policy.min_instances - (count - len(asked)))]  # the minimum's: a new one each
        doing = f"removing {plural(len(asked), 'worker')}" + (
            f" and replacing {', '.join(renew)} (min {policy.min_instances})" if renew else "")
        return Decision("remove", count - len(asked) + len(renew), asked,
                        f"{', '.join(asked)} to drain, as asked by hand; {doing}", replaced=renew)

    booting = len(memory.booting)

    # 2. below min (a template's count under it, a failed boot or a lost worker removed): back up to min
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
        ids = _new_ids(policy.node, live, add)
        for iid in ids:
            memory.booting[iid] = now
        memory.last_decision_at = now
        return Decision("add", count + add, (), f"{below}; adding {plural(add, 'worker')}", ids)

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
        ids = _new_ids(policy.node, live, add)
        for iid in ids:
            memory.booting[iid] = now
        memory.last_decision_at = now
        bounds = f"max {policy.max_instances}, {policy.max_booting} booting at most"
        if quota_left is not None:
            bounds += f", quota {quota_left}"
        short = f"; {need - add} more needed" if add < need else ""
        return Decision("add", count + add, (),
                        f"{waits}; adding {plural(add, 'worker')} of {plural(cores_per_worker, 'core')} "
                        f"({bounds}){short}{_named(workload.waiting)}", ids)

    # 4. nothing waits: remove the workers chosen (drained ones, then the longest idle), keeping min alive
    return _scale_down(policy, live, worker_of, memory, now, count, in_cooldown, disabled)


def _scale_down(policy: Policy, live: list[Instance], worker_of: dict[str, WorkerLoad | None], memory: Memory,
                now: float, count: int, in_cooldown: bool, disabled: frozenset[str]) -> Decision:
    alive = [i for i in live if (w := worker_of.get(i.id)) is not None and w.alive]
    draining = [i for i in live if (w := worker_of.get(i.id)) is not None and _draining(w)
                and i.id not in memory.booting and i.id not in disabled]
    idle: list[tuple[Instance, float]] = []
    waiting_idle: list[tuple[Instance, float]] = []
    for inst in alive:
        w = worker_of[inst.id]
        if w is None or w.busy or inst.id in memory.booting or inst.id in disabled:
            continue
        idle_for = now - memory.idle_since.get(w.host, now)
        (idle if idle_for >= policy.idle_time else waiting_idle).append((inst, idle_for))
    room = max(0, len(alive) - policy.min_instances)  # alive workers that may go: min stay alive
    idle.sort(key=lambda p: (-p[1], -p[0].index))     # the longest idle first; the highest index among equals
    chosen = draining + [i for i, _ in idle[:room]]
    held = [i.id for i, _ in idle[room:]]
    if not chosen:
        if waiting_idle:
            inst, t = max(waiting_idle, key=lambda p: p[1])
            return Decision("none", count, (), f"nothing waits; {inst.id} has been idle for {_secs(t)} of "
                                               f"{_secs(policy.idle_time)}")
        if held:
            return Decision("none", count, (), f"nothing waits (at min {policy.min_instances}: "
                                               f"{plural(len(alive), 'worker')} alive; {', '.join(held)} idle)")
        return Decision("none", count, (), "nothing waits" + (f" (at min {policy.min_instances})"
                                                              if count <= policy.min_instances else ""))
    if in_cooldown:
        return Decision("wait", count, (), f"{plural(len(chosen), 'idle worker')} to remove; cooling down "
                                           f"({_secs(policy.cooldown)} between decisions)")
    memory.last_decision_at = now
    chosen.sort(key=lambda i: -i.index)
    ids = tuple(i.id for i in chosen)
    drained = [i.id for i in draining]
    idle_ids = [i.id for i in chosen if i.id not in drained]
    parts = []
    if idle_ids:
        least = min(t for i, t in idle if i.id in idle_ids)
        parts.append(f"{', '.join(idle_ids)} idle for {_secs(least)}{' or more' if len(idle_ids) > 1 else ''} "
                     f"(idle time {_secs(policy.idle_time)})")
    if drained:
        parts.append(f"{', '.join(drained)} drained")
    what = "it" if len(ids) == 1 else plural(len(ids), "worker")
    extra = f"; {', '.join(held)} stay{'s' if len(held) == 1 else ''} for min {policy.min_instances}" if held else ""
    return Decision("remove", count - len(ids), ids, f"{'; '.join(parts)}; removing {what} "
                    f"(min {policy.min_instances} alive){extra}")
