"""What deployments hold now (machines, cores, memory), for the server's quotas
and the dashboard's list: one rule for what a machine counts (`_count`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select

from dodas.engine.states import DeploymentStatus as DS
from dodas.state.models import Deployment, InstanceRow
from dodas.state.store import Store


def _count(names: list[str]) -> tuple[set[str], dict[str, tuple[int, int, int, int]]]:
    """(the names that have a deployment row, {name: (machines, cores, memory in
    MiB, machines whose size the provider has not reported yet)} of those not
    destroyed): a machine's cores and memory as its provider reported them, else
    one core and no memory known. One query, however many deployments: it runs
    on every request that creates and every poll of the list."""
    q = (select(Deployment.name, Deployment.status, InstanceRow.id, InstanceRow.attributes)
         .outerjoin(InstanceRow, and_(InstanceRow.deployment_id == Deployment.id, InstanceRow.kind == "compute"))
         .where(Deployment.name.in_(names)))
    with Store().session() as s:
        rows: list[Any] = list(s.execute(q).all())
    made: set[str] = set()
    out: dict[str, tuple[int, int, int, int]] = {}
    for name, status, instance, attributes in rows:
        made.add(name)
        if status == DS.DELETE_COMPLETE.value:
            continue
        machines, cores, mem, unknown = out.get(name, (0, 0, 0, 0))
        if instance is not None:
            facts = (attributes or {}).get("facts") or {}
            machines += 1
            cores += int(facts.get("num_cpus") or 1)
            mem += int(facts.get("mem_mib") or 0)
            unknown += 0 if facts.get("num_cpus") else 1
        out[name] = (machines, cores, mem, unknown)
    return made, out


def sizes(names: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """{name: (machines, cores, memory in MiB, machines not reported yet)} of the
    named deployments not destroyed; one asked for and not started yet is left out."""
    return _count(names)[1] if names else {}


def held(names: list[str]) -> tuple[int, int, int]:
    """(live deployments, machines, cores) of the named deployments. A name with
    no deployment row yet (its first apply is queued) counts as a deployment."""
    if not names:
        return 0, 0, 0
    made, found = _count(names)
    queued = len(set(names) - made)
    return (len(found) + queued, sum(f[0] for f in found.values()), sum(f[1] for f in found.values()))
