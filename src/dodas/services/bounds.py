"""What the chosen provider can hold of an elastic node: `plan` and `up` check
each elasticity policy's max_instances against it.

A fixed count the provider cannot hold is refused at plan (its preflight); a
policy's maximum is a count the autoscaler may reach later, so the same check
on it is a located warning naming how many fit (an error with --strict), and
the autoscaler asks for no more than fit when it gets there
(services/autoscale.add_fitting). The figure comes from the provider's own
preflight on the plan with the node at each count tried (capacity, quota),
the one rule of what a provider takes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dodas.errors import Diagnostic
from dodas.model.deployment import DeploymentModel, Policy


def at_count(model: DeploymentModel, node: str, count: int) -> DeploymentModel:
    """The model with `node` at `count` instances (a copy: the plan is not changed)."""
    return replace(model, nodes={**model.nodes, node: replace(model.nodes[node], count=count, indexes=None)})


def fits(provider: Any, model: DeploymentModel, node: str, count: int) -> list[str]:
    """What the provider says against `node` having `count` instances (nothing: it fits)."""
    return list(provider.preflight(at_count(model, node, count)))


def most_that_fit(provider: Any, model: DeploymentModel, policy: Policy) -> tuple[int, list[str]] | None:
    """None when the policy's max_instances fits; else the most instances that do
    (from the node's count now, which the provider took) and what it says of one more."""
    if not fits(provider, model, policy.node, policy.max_instances):
        return None
    low, high = model.nodes[policy.node].count, policy.max_instances  # low fits, high does not
    said = fits(provider, model, policy.node, high)
    while high - low > 1:
        mid = (low + high) // 2
        problems = fits(provider, model, policy.node, mid)
        if problems:
            high, said = mid, problems
        else:
            low = mid
    return low, said


def warnings(provider_name: str, provider: Any, model: DeploymentModel) -> list[Diagnostic]:
    """A located warning for each policy whose max_instances the provider cannot hold."""
    out = []
    for policy in model.elastic:
        if policy.node not in model.nodes:
            continue
        found = most_that_fit(provider, model, policy)
        if found is None:
            continue
        n, said = found
        file, line, col = policy.max_location or (model.template_path, 1, 1)
        out.append(Diagnostic(file, line, col, f'{policy.source}: max_instances {policy.max_instances} of node '
                              f'"{policy.node}" is more than provider {provider_name} can hold: {n} fit '
                              f"({'; '.join(said)[:400]}); the autoscaler will stop at {n}"))
    return out
