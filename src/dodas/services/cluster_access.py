"""How dodas reaches a cluster a deployment made: the one home of the rule that
`dodas kubeconfig` (services/read.py) and the autoscaler's Kubernetes reader
(services/autoscale_target.py) share. Imports nothing of dodas, so both can."""

from __future__ import annotations

from typing import Any


def kubeconfig_of(ctx: Any) -> str | None:
    """The kubeconfig a deployment's Kubernetes front end reported (`ctx`: its
    recorded machines and secrets), with the API server at the front end's public
    address when it has one; None before there is one. `dodas kubeconfig` and the
    autoscaler's Kubernetes reader both read the cluster through it."""
    import re

    for inst in sorted(ctx.secrets, key=str):
        conf = ctx.secrets[inst].get("kubeconfig")
        if isinstance(conf, str) and conf:
            machine = ctx.machine_of(inst)
            if machine is not None and machine.public_address:
                conf = re.sub(r"(server:\s*https://)[^:/\s]+", r"\g<1>" + machine.public_address, conf)
            return conf
    return None
