"""Which providers a deployment may go to, in the order to try them.

As the INDIGO PaaS Orchestrator does it: a template may pin a cloud with a
placement policy (a cloud id or SLA id), or implicitly through its image URLs
(`ost://HOST/...` goes to the providers that declare HOST among their
`image_hosts`); otherwise every configured provider is a candidate, best rank
first. `--provider` overrides all of it.
"""

from __future__ import annotations

from dodas.errors import DodasError
from dodas.model.deployment import DeploymentModel
from dodas.providers import config
from dodas.providers.config import ProviderConfig

#: image URL scheme -> the provider type that serves it
SCHEMES = {"ost": "openstack", "aws": "ec2"}


def candidates(model: DeploymentModel, requested: str | None, max_providers: int) -> list[ProviderConfig]:
    if requested:
        return [config.get(requested)]
    ranked = config.load()
    if model.placement:
        pinned = [p for p in ranked if p.name in model.placement or set(p.cloud_ids) & set(model.placement)]
        if not pinned:
            raise DodasError(f"the template's placement policy asks for {', '.join(model.placement)}, and no "
                             f"configured provider has that name or cloud id (see {config.config_file()})")
        ranked = pinned
    schemes = model.image_schemes()
    if schemes:  # ost:// images need OpenStack, aws:// ones EC2
        wanted = {SCHEMES.get(s, s) for s in schemes}
        typed = [p for p in ranked if p.type in wanted]
        if not typed:
            raise DodasError(f"the template's images ({', '.join(sorted(model.images()))}) need a provider of "
                             f"type {', '.join(sorted(wanted))}, and none is configured "
                             f"(see {config.config_file()}, or choose one with --provider)")
        ranked = typed
    hosts = model.image_hosts()
    serving = [p for p in ranked if hosts and hosts <= set(p.image_hosts)]
    if serving:  # images name a cloud some provider declares: only those can serve them
        ranked = serving
    return ranked[:max(1, max_providers)]
