"""What deployments hold now (machines and cores), for the server's quotas."""

from __future__ import annotations

from sqlalchemy import and_, select

from dodas.engine.states import DeploymentStatus as DS
from dodas.state.models import Deployment, InstanceRow
from dodas.state.store import Store


def held(names: list[str]) -> tuple[int, int, int]:
    """(live deployments, machines, cores) of the named deployments: a machine's
    cores as its provider reported them, else 1. A name with no deployment row
    yet (its first apply is queued) counts as a deployment. One query, however
    many deployments the caller has: it runs on every request that creates."""
    if not names:
        return 0, 0, 0
    q = (select(Deployment.name, Deployment.status, InstanceRow.id, InstanceRow.attributes)
         .outerjoin(InstanceRow, and_(InstanceRow.deployment_id == Deployment.id, InstanceRow.kind == "compute"))
         .where(Deployment.name.in_(names)))
    with Store().session() as s:
        rows = s.execute(q).all()
    live: set[str] = set()
    machines = cores = 0
    for name, status, instance, attributes in rows:
        if status == DS.DELETE_COMPLETE.value:
            continue
        live.add(name)
        if instance is not None:
            machines += 1
            cores += int(((attributes or {}).get("facts") or {}).get("num_cpus") or 1)
    queued = len(set(names) - {r[0] for r in rows})
    return len(live) + queued, machines, cores
