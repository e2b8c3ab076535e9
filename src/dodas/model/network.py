"""What a deployment opens to the outside world, computed from the plan.

Providers that have firewalls (security groups on EC2 and OpenStack) apply
exactly this union on every `up`; the deployment's own machines always reach each
other, and SSH is opened by the provider to the operator, so neither appears here.
A port that only the deployment's own machines use (Spark's master port, 7077) is
therefore not an endpoint port at all; a port meant for some networks only names
them with INDIGO's `remote_cidr` (a port of PortSpec), which is kept here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from dodas.model.deployment import DeploymentModel

#: every IPv4 address: what a port without `remote_cidr` is open to
ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True, order=True)
class Ingress:
    """One inbound rule: `port` of `protocol` from `cidr`."""

    protocol: str
    port: int
    cidr: str = ANYWHERE


def cidr(value: Any) -> str | None:
    """`value` as a normalised network ("10.1.2.3/8" -> "10.0.0.0/8", an address
    alone -> a /32 or /128), or None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        return None


def is_public(rule: Ingress) -> bool:
    """Whether anyone on the Internet may use the rule (0.0.0.0/0 or ::/0)."""
    return ipaddress.ip_network(rule.cidr, strict=False).prefixlen == 0


def ingress_rules(model: DeploymentModel) -> tuple[Ingress, ...]:
    """The union of the endpoint ports every compute node declares, sorted."""
    out: set[Ingress] = set()
    for node in model.nodes.values():
        if node.compute is None:
            continue
        for p in node.compute.ports:
            port = p.source or p.target
            if port:
                out.add(Ingress(p.protocol, port, p.remote_cidr))
    return tuple(sorted(out))
