"""What a plan costs, as a page shows it next to the plan: the cores and memory
of each node's machines and in total, against the quotas the caller is held to
(what they hold already in their other deployments, and each bound). The same
counts as the quota check (tenancy.plan_usage: a machine with no cores given
counts one), so that what the page shows is what a refusal would say.
"""

from __future__ import annotations

from typing import Any

from dodas.services import tenancy


def of_plan(cfg: Any, caller: tenancy.Caller, dplan: Any, group: str | None = None,
            replacing: str | None = None) -> dict[str, Any]:
    """{nodes: [{node, count, cores, mem_mib}], total: {machines, cores, mem_mib}, quotas: [...]},
    each quota {kind, who, machines, cores, held_machines, held_cores} (None: no bound)."""
    nodes = []
    for n in dplan.plan.model.nodes.values():
        if n.compute is None or n.count == 0:
            continue
        nodes.append({"node": n.name, "count": n.count, "cores": n.compute.num_cpus or 1,
                      "mem_mib": n.compute.mem_mib})
    wanted = tenancy.plan_usage(dplan.plan)
    total = {"machines": wanted.instances, "cores": wanted.cores,
             "mem_mib": sum(n["count"] * (n["mem_mib"] or 0) for n in nodes)}
    quotas = []
    for kind, who, quota, names in tenancy.Bounds.of(caller, cfg, group).quotas():
        now = tenancy.held([n for n in names if n != replacing])
        quotas.append({"kind": kind, "who": who, "machines": quota.instances, "cores": quota.cores,
                       "held_machines": now.instances, "held_cores": now.cores})
    return {"nodes": nodes, "total": total, "quotas": quotas}


def of_deployments(names: list[str]) -> dict[str, dict[str, int]]:
    """What each named deployment holds now, {name: {machines, cores, mem_mib,
    unknown}}, counted as the quota counts it (usage.py); `unknown`: machines
    being made, whose cores and memory their provider has not reported yet (the
    cores and memory are then those known so far). One not started yet, or
    destroyed, is absent. For the list of deployments: one query for a page."""
    from dodas.services import usage

    return {n: {"machines": m, "cores": c, "mem_mib": mem, "unknown": u}
            for n, (m, c, mem, u) in usage.sizes(names).items()}
