"""What deployments hold now (machines and cores), for the server's quotas."""

from __future__ import annotations

from dodas.engine.states import DeploymentStatus as DS
from dodas.state.store import Store


def held(names: list[str]) -> tuple[int, int, int]:
    """(live deployments, machines, cores) of the named deployments: a machine's
    cores as its provider reported them, else 1. A name with no deployment row
    yet (its first apply is queued) counts as a deployment."""
    store = Store()
    deployments = machines = cores = 0
    for name in names:
        dep = store.get(name)
        if dep is None:
            deployments += 1
            continue
        if dep.status == DS.DELETE_COMPLETE.value:
            continue
        deployments += 1
        for row in store.instances(dep.id).values():
            if row.kind == "compute":
                machines += 1
                facts = (row.attributes or {}).get("facts") or {}
                cores += int(facts.get("num_cpus") or 1)
    return deployments, machines, cores
