"""What a deployment costs, as the dashboard shows it: the cores and memory of
each node's machines and in total, against the quotas its owner is held to
(what they hold already in their other deployments, and each bound).

Three moments, one shape ({nodes, total, quotas}, see `_shape`):
- the deploy form (`of_form`): the template planned with the form's values, so
  that the figure follows the inputs before anything is asked;
- a plan (`of_plan`): what confirming would hold;
- a deployment's page (`of_machines`): what its machines hold now, as their
  provider reported them.
The same counts as the quota check (tenancy.plan_usage, usage.held: a machine
with no cores given counts one), so that what a page shows is what a refusal
would say. A node asking for 0 cores is shown so (`cores_asked`): counted as
one, but likely a mistake in the inputs.
"""

from __future__ import annotations

from typing import Any

from dodas.services import tenancy


def of_plan(cfg: Any, caller: tenancy.Caller, dplan: Any, group: str | None = None,
            replacing: str | None = None) -> dict[str, Any]:
    """{nodes: [{node, count, cores, cores_asked, mem_mib}], total: {machines, cores, mem_mib}, quotas: [...]},
    each quota {kind, who, machines, cores, held_machines, held_cores} (None: no bound); `held_*`
    are what the owner holds elsewhere (without `replacing`, the deployment the plan changes)."""
    return of_model(dplan.plan.model, tenancy.Bounds.of(caller, cfg, group), replacing)


def of_model(model: Any, bounds: tenancy.Bounds | None, replacing: str | None = None) -> dict[str, Any]:
    """The cost of a deployment model (a plan's, or a form's) against `bounds` (None: no quota)."""
    nodes = []
    for n in model.nodes.values():
        count = model.instance_count(n.name) if n.compute is not None else 0
        if count == 0:
            continue
        nodes.append({"node": n.name, "count": count, "cores": n.compute.num_cpus or 1,
                      "cores_asked": n.compute.num_cpus, "mem_mib": n.compute.mem_mib})
    return _shape(nodes, bounds, lambda names: [n for n in names if n != replacing])


def of_form(cfg: Any, caller: tenancy.Caller, entry: str, given: dict[str, Any],
            group: str | None = None) -> dict[str, Any] | None:
    """The cost of the catalogue's template `entry` with a form's values (`-i`
    text, as forms.posted gives them): planned offline, inputs the form leaves
    out (a secret, a required one not filled in yet) standing in as `validate`
    has them. None when it cannot be told yet (a value that does not plan, a
    template that needs the network): the plan's step shows it then."""
    from dodas.errors import DodasError
    from dodas.services import catalogue, plan_given
    from dodas.tosca.inputs import GivenInput

    values = {k: GivenInput(v, f"<-i {k}>", 1, 1, from_cli=True) for k, v in given.items()}  # as a request's
    try:
        path = catalogue.path_of(cfg.catalogue, entry)
        model = plan_given(str(path), values, offline=True, environment=False, unknown_inputs=True).model
    except (DodasError, OSError, ValueError):
        return None
    return of_model(model, tenancy.Bounds.of(caller, cfg, group))


def of_machines(name: str, machines: list[dict[str, Any]]) -> dict[str, Any]:
    """What a deployment's machines hold now (served.machines: each with its node,
    `cores` and `mem_mib` as the provider reported them), against the quotas
    of the request that made or last changed it (its owner's, not the reader's);
    `held_*` include this deployment."""
    nodes: dict[tuple[str, int, int | None], dict[str, Any]] = {}
    for m in machines:  # one row per node and size (a node's machines may differ after an update)
        key = (m["node"], m["cores"] or 1, m["mem_mib"])
        row = nodes.setdefault(key, {"node": m["node"], "count": 0, "cores": m["cores"] or 1,
                                     "cores_asked": m["cores"], "mem_mib": m["mem_mib"]})
        row["count"] += 1
    return _shape(list(nodes.values()), tenancy.recorded_bounds(name), lambda names: names)


def _shape(nodes: list[dict[str, Any]], bounds: tenancy.Bounds | None, counted: Any) -> dict[str, Any]:
    total = {"machines": sum(n["count"] for n in nodes), "cores": sum(n["count"] * n["cores"] for n in nodes),
             "mem_mib": sum(n["count"] * (n["mem_mib"] or 0) for n in nodes)}
    quotas = []
    for kind, who, quota, names in bounds.quotas() if bounds is not None else []:
        now = tenancy.held(counted(names))
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
