"""What a deployment opens to the outside world, computed from the plan.

Providers that have firewalls (security groups on EC2 and OpenStack) apply
exactly this union on every `up`; the deployment's own machines always reach each
other, and SSH is opened by the provider to the operator, so neither appears here.
"""

from __future__ import annotations

from dataclasses import dataclass

from dodas.model.deployment import DeploymentModel


@dataclass(frozen=True, order=True)
class Ingress:
    """One inbound rule: `port` of `protocol` from `cidr`."""

    protocol: str
    port: int
    cidr: str = "0.0.0.0/0"


def ingress_rules(model: DeploymentModel) -> tuple[Ingress, ...]:
    """The union of the endpoint ports every compute node declares, sorted."""
    out: set[Ingress] = set()
    for node in model.nodes.values():
        if node.compute is None:
            continue
        for p in node.compute.ports:
            port = p.source or p.target
            if port:
                out.add(Ingress(p.protocol, port))
    return tuple(sorted(out))
