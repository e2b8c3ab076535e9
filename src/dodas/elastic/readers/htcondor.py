"""HTCondor: idle jobs and the pool's slots, through the `htcondor` bindings from PyPI
(the `elastic` extra; imported only when used).

The wheel of HTCondor 25 carries only the version-2 bindings, `htcondor2` and
`classad2`; they install with pip and build and evaluate ClassAds offline, so
the tests feed this reader ClassAds parsed from recorded `condor_q -long` /
`condor_status -long` text. It has not run against a live pool here.

Idle jobs (JobStatus 1) wait for their RequestCpus; unclaimed slots can take
them, so the cores that wait are the idle jobs' cores beyond the unclaimed
slots' cores. A worker is a startd machine (`Machine`), busy when one of its
slots is Claimed; it is drained gracefully (`Startd.drainJobs`: running jobs
finish, no new ones start) and done when no slot is claimed any more.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import defaultdict
from typing import Any

from dodas.elastic.workload import WorkerLoad, Workload, plural

JOB_IDLE = 1
JOB_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "RequestCpus", "RequestMemory", "Owner", "Cmd"]
SLOT_PROJECTION = ["Name", "Machine", "State", "Activity", "Cpus", "TotalSlotCpus", "SlotType", "Draining",
                   "MyAddress"]


def _value(ad: Any, key: str, default: Any = None) -> Any:
    """An attribute's value, evaluated when it is an expression (RequestCpus often is)."""
    if key not in ad:
        return default
    try:
        v = ad.eval(key) if hasattr(ad, "eval") else ad[key]
    except Exception:  # an expression that does not evaluate here (refers to a machine ad)
        return default
    return default if type(v).__name__ == "Value" else v  # classad2.Value: Undefined, Error


def _host(ads: list[Any], machine: str) -> str:
    """The startd's IP address, from MyAddress ("<10.0.0.21:9618?addrs=...>"): what dodas knows the
    instance by; the machine name when there is none."""
    for s in ads:
        m = re.match(r"<\[?([0-9a-fA-F.:]+?)\]?:\d+", str(_value(s, "MyAddress", "") or ""))
        if m:
            return m.group(1)
    return machine


def workload_of(jobs: list[Any], slots: list[Any]) -> Workload:
    """The workload from a schedd's job ads and a collector's startd (slot) ads."""
    idle = [j for j in jobs if _value(j, "JobStatus") == JOB_IDLE]
    by_machine: dict[str, list[Any]] = defaultdict(list)
    for s in slots:
        by_machine[str(_value(s, "Machine", ""))].append(s)
    free = 0
    workers = []
    for machine, ads in sorted(by_machine.items()):
        # a partitionable slot owns the machine's cores; its dynamic slots are carved from them
        parts = [s for s in ads if _value(s, "SlotType") == "Partitionable"]
        claimed = [s for s in ads if _value(s, "State") == "Claimed"]
        unclaimed = [s for s in ads if _value(s, "State") == "Unclaimed"]
        total = sum(int(_value(s, "Cpus", 0) or 0) for s in ads if _value(s, "SlotType") != "Dynamic")
        used = sum(int(_value(s, "Cpus", 0) or 0) for s in claimed)
        if parts:
            total = sum(int(_value(s, "TotalSlotCpus", 0) or _value(s, "Cpus", 0) or 0) for s in parts)
        draining = any(_value(s, "Draining", False) is True for s in ads)
        if not draining:
            free += sum(int(_value(s, "Cpus", 0) or 0) for s in unclaimed)
        state = "draining" if draining else ("Claimed" if claimed else "Unclaimed")
        workers.append(WorkerLoad(id=machine, host=_host(ads, machine), busy=bool(claimed), cores=total,
                                  cores_used=used, state=state))
    need = 0
    for j in idle:
        need += max(1, math.ceil(float(_value(j, "RequestCpus", 1) or 1)))
    waiting_cores = max(0, need - free)
    waiting: tuple[str, ...] = ()
    if waiting_cores:
        waiting = tuple(f"job {_value(j, 'ClusterId')}.{_value(j, 'ProcId')} of {_value(j, 'Owner', '?')} is idle "
                        f"and requests {plural(max(1, math.ceil(float(_value(j, 'RequestCpus', 1) or 1))), 'core')}"
                        for j in idle)
    return Workload(waiting_cores=waiting_cores, waiting=waiting, workers=tuple(workers))


class HTCondorReader:
    """Reads a pool: the collector's slots, one schedd's jobs (the pool's first schedd if none is named)."""

    def __init__(self, collector: str | None = None, schedd: str | None = None, *,
                 query: Any = None, start_drain: Any = None) -> None:
        self.collector = collector
        self.schedd = schedd
        self._query = query   # tests: a callable ("jobs" | "slots") -> ClassAds, instead of the daemons
        self._start_drain = start_drain or self._drain_startd   # tests: a callable (startd name) -> None

    def _drain_startd(self, name: str) -> None:
        import htcondor2 as htcondor
        coll = htcondor.Collector(self.collector)
        startd = htcondor.Startd(coll.locate(htcondor.DaemonType.Startd, name))
        startd.drainJobs(htcondor.DrainType.Graceful, reason="dodas autoscaler: idle worker removed")

    def _ads(self, what: str) -> list[Any]:
        if self._query is not None:
            return list(self._query(what))
        import htcondor2 as htcondor
        coll = htcondor.Collector(self.collector)
        if what == "slots":
            return coll.query(htcondor.AdType.Startd, projection=SLOT_PROJECTION)
        location = coll.locate(htcondor.DaemonType.Schedd, self.schedd) if self.schedd else \
            coll.locate(htcondor.DaemonType.Schedd)
        return htcondor.Schedd(location).query(constraint=f"JobStatus == {JOB_IDLE}", projection=JOB_PROJECTION)

    def _read(self) -> Workload:
        return workload_of(self._ads("jobs"), self._ads("slots"))

    async def read(self) -> Workload:
        return await asyncio.to_thread(self._read)

    def _drain(self, machine: str) -> bool:
        slots = [s for s in self._ads("slots") if _value(s, "Machine") == machine]
        if not slots:
            return True
        if not any(_value(s, "Draining", False) is True for s in slots):
            # the startd's name is its slots' name after the "@" (slot1@wn-0 -> wn-0)
            self._start_drain(str(_value(slots[0], "Name", machine)).split("@")[-1])
        return not any(_value(s, "State") == "Claimed" for s in slots)

    async def drain(self, worker: WorkerLoad) -> bool:
        """Drain the startd gracefully (running jobs finish); True once no slot is claimed."""
        return await asyncio.to_thread(self._drain, worker.id)
