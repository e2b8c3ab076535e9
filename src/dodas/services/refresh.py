"""`dodas refresh`: ask the provider what really exists, and record the differences.

As `terraform refresh` does: dodas's state says what it made; a machine deleted
in the cloud's console, or a service killed on its machine, is drift. Refresh
asks the provider for each recorded machine and each recorded service, marks a
machine that is gone as `missing` (the next `up` creates it again, and `plan`
says so), and writes each finding as a `drift` event. It changes nothing in the
world, and it takes the deployment's lock only for its own writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dodas import paths
from dodas.engine.states import COMPUTE_READY, InstanceState
from dodas.providers import get_provider
from dodas.state import lock
from dodas.state.store import Store


@dataclass
class Drift:
    #: compute instances whose machine the provider no longer has
    missing: list[str] = field(default_factory=list)
    #: instance id -> its recorded services that are not running
    dead_services: dict[str, list[str]] = field(default_factory=dict)
    #: machines checked (a count, for the message)
    checked: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"missing": self.missing, "dead_services": self.dead_services, "checked": self.checked,
                "drift": bool(self.missing or self.dead_services)}


def refresh(name: str) -> Drift:
    from dodas.services import read  # the one home of "are these services alive"

    store = Store()
    dep = store.require(name)
    provider = get_provider(dep.provider)
    rows = store.instances(dep.id)
    computes = [k for k, r in sorted(rows.items()) if r.kind == "compute" and r.state in COMPUTE_READY]

    async def ask() -> list[Any]:
        return await asyncio.gather(*(provider.describe(dep.id, paths.instance_id(*k)) for k in computes))
    found = dict(zip(computes, asyncio.run(ask()))) if computes else {}
    out = Drift(checked=len(computes))
    me = lock.me()
    with store.session() as s:  # a refresh never writes under another run's feet
        lock.acquire(s, s.get(type(dep), dep.id), me)
    try:
        for key, machine in found.items():
            if machine is None:
                iid = paths.instance_id(*key)
                out.missing.append(iid)
                store.save_instance(dep.id, key[0], key[1], state=InstanceState.MISSING.value,
                                    error="the provider no longer has this machine")
                store.event(dep.id, "drift", f"the machine of {iid} is gone from provider {dep.provider}; "
                            "the next up creates it again", instance=iid, level="warning")
        status = read.status(name)
        for item in status["instances"]:
            dead = [s for s, svc in (item.get("services") or {}).items() if svc.get("alive") is False]
            if dead:
                out.dead_services[item["id"]] = dead
                store.event(dep.id, "drift", f"service(s) not running: {', '.join(dead)}; the next up starts "
                            "them again", instance=item["id"], level="warning")
        if not out.missing and not out.dead_services:
            store.event(dep.id, "drift", f"refresh: {out.checked} machine(s) checked, no drift")
    finally:
        with store.session() as s:
            lock.release(s, dep.id, me)
    return out
