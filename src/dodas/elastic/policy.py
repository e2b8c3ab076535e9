"""The elasticity policy, as the autoscaler and the faces use it.

The policy is part of the deployment model: `model/elastic.py` reads it from the
template (dodas's `tosca.policies.dodas.Elastic` or INDIGO's
`tosca.nodes.indigo.ElasticCluster`) while the model is built, with located
errors, and `DeploymentModel.elastic` holds it; the plan's JSON carries it
(`policies`). It lives in the model, not here, so that building and planning
need nothing of `dodas.elastic` (which may import tosca/ and model/ only, never
the reverse). This module is its door for the rest of elastic/ and for the
server: the class, the policies of a model, a plan or a plan's JSON, and the
quota rule only a server knows.
"""

from __future__ import annotations

from typing import Any

from dodas.errors import Diagnostic
from dodas.model.deployment import DeploymentModel, Policy
from dodas.model.elastic import ELASTIC_CLUSTER, ELASTIC_POLICY, WORKLOADS

__all__ = ["ELASTIC_CLUSTER", "ELASTIC_POLICY", "WORKLOADS", "Policy", "check_quota", "policies"]


def policies(source: Any) -> list[Policy]:
    """The elasticity policies of a `DeploymentModel`, of anything holding one as
    `.model` (a `Plan`, a `DeploymentPlan`'s `.plan`), or of a plan's JSON (the
    `policies` field of `dodas plan --json`, or a server's answer)."""
    if isinstance(source, dict):
        return [Policy.from_json(p) for p in source.get("policies") or []]
    model = source if isinstance(source, DeploymentModel) else getattr(source, "model", None)
    if model is None and hasattr(source, "plan"):
        model = getattr(source.plan, "model", None)
    if not isinstance(model, DeploymentModel):
        raise TypeError(f"no deployment model in {type(source).__name__}")
    return list(model.elastic)


def check_quota(policy: Policy, max_machines: int, *, fixed_machines: int = 0) -> Diagnostic | None:
    """Whether `policy` at its maximum fits a quota of `max_machines` machines,
    beside `fixed_machines` the deployment's other nodes make; None when it does.

    The quota is a server's rule (its callers' limits), so planning cannot check
    it: the server calls this for each policy of a plan it is asked to carry out
    and refuses with the diagnostic, placed at the policy's max_instances."""
    if policy.max_instances + fixed_machines <= max_machines:
        return None
    others = f" beside {fixed_machines} other machines" if fixed_machines else ""
    message = (f"{policy.source}: max_instances {policy.max_instances} of node \"{policy.node}\"{others} is over "
               f"the quota of {max_machines} machines")
    file, line, col = policy.max_location or ("<template>", 1, 1)
    return Diagnostic(file, line, col, message)
