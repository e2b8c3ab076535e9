"""`dodas autoscale NAME --disable/--enable/--drain 'worker_hosts[2]'`: one
worker of an elastic node set aside, given back, or drained and removed by
hand, as CLUES let its users disable, enable and power off a node.

What is set is kept with the autoscaler's memory (state/autoscalers.control),
which the loop reads at every poll and never overwrites: a disabled worker is
never chosen for removal (dodas.elastic.decide), a worker to drain is drained
and removed at the loop's next decision. Disabling also asks the workload to
give the worker no new work where it can: Spark decommissions it (its running
executors finish); a decommissioned Spark worker cannot take work again, so
enabling it later has the autoscaler replace it.

This is the one home of these operations: the CLI calls `control`, the REST
API and the dashboard `control_as` (who may, then the same `control`). A
deployment without a policy is in the wrong state for them (exit 6, HTTP
409); an action or an instance it does not have is a bad request (exit 1,
HTTP 422) that names what there is.
"""

from __future__ import annotations

import asyncio
import time

from typing import Any

from dodas.errors import DodasError
from dodas.state import autoscalers
from dodas.state.store import Store

ACTIONS = ("disable", "enable", "drain")


def control_as(cfg: Any, caller: Any, name: str, action: str, instance: str) -> dict[str, str]:
    """`control` for a server's caller: 404 for a deployment they may not see,
    403 when they may read it only, 409 while it is being destroyed."""
    from dodas.services import tenancy

    tenancy.operable(cfg, caller, name)
    tenancy.not_being_destroyed(name)
    return {"name": name, "action": action, "instance": instance.strip(),
            "said": control(name, action, instance)}


def control(name: str, action: str, instance: str) -> str:
    """Do `action` on `instance` of `name`'s elastic node; the sentence to show."""
    from dodas.services import autoscale

    if action not in ACTIONS:
        raise DodasError(f"unknown autoscaler action {action[:40]!r} (one of {', '.join(ACTIONS)})")
    if name not in autoscalers.names():
        from dodas.services.lifecycle import WrongStateError

        Store().require(name)  # exit 4 for no deployment at all, naming those there are
        raise WrongStateError(f'deployment "{name}" is not elastic (no elasticity policy was applied): '
                              "it has no workers to disable, enable or drain")
    t = autoscale.target(name)
    live = [i for i in t.instances if i.state not in ("deleting", "deleted")]
    inst = next((i for i in live if i.id == instance.strip()), None)
    if inst is None:
        have = ", ".join(i.id for i in live) or "none"
        raise DodasError(f'"{instance[:80]}" is not an instance of {t.policy.node} (its instances: {have})')
    now = time.time()
    if action == "disable":
        autoscalers.control(name, [inst.id], "disabled", now)
        said = f"{inst.id} disabled: the autoscaler never removes it"
        said += _no_new_work(t, inst)
    elif action == "enable":
        autoscalers.control(name, [inst.id], None, now)
        said = (f"{inst.id} enabled: the autoscaler may remove it again" +
                ("; a decommissioned Spark worker takes no work again, so it is replaced"
                 if t.policy.workload == "spark" else ""))
    else:
        autoscalers.control(name, [inst.id], "drain", now)
        who, _ = autoscalers.holder(name)
        said = (f"{inst.id} will be drained and removed at the autoscaler's next decision"
                + ("" if who else f" (none runs now: dodas autoscale {name})"))
    dep = Store().get(name)
    if dep is not None:
        Store().event(dep.id, "autoscale", f"by hand: {said}", level="info")
    return said


def _no_new_work(t: object, inst: object) -> str:
    """Ask the workload to give the worker no new work (Spark: decommission it)."""
    from dodas.elastic.readers import reader_for
    from dodas.services.autoscale import _why

    try:
        reader = reader_for(t.policy.workload, **t.reader_params)  # type: ignore[attr-defined]
        workload = asyncio.run(reader.read())
        worker = next((w for w in workload.workers if inst.matches(w)), None)  # type: ignore[attr-defined]
        if worker is None or not worker.alive:
            return "; it is not a working worker of the workload now"
        asyncio.run(reader.drain(worker))
    except Exception as exc:  # noqa: BLE001 - disabled all the same; the workload's refusal is said
        return f"; the workload could not be asked to give it no new work: {_why(exc)}"
    return f"; the {t.policy.workload} workload gives it no new work (what runs there finishes)"  # type: ignore[attr-defined]
