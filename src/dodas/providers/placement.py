"""Which providers a deployment may go to, in the order to try them.

As the INDIGO PaaS Orchestrator does it: a template may pin a cloud with a
placement policy (a cloud id or SLA id), or implicitly through its image URLs
(`ost://HOST/...` goes to the providers that declare HOST among their
`image_hosts`); otherwise every configured provider is a candidate, best rank
first. `--provider` overrides all of it. A template made only of Helm releases
goes to the existing clusters (providers of type kubernetes), and only there.
"""

from __future__ import annotations

from dodas.errors import DodasError
from dodas.model.deployment import DeploymentModel
from dodas.providers import config
from dodas.providers.config import ProviderConfig

#: image URL scheme -> the provider type that serves it
SCHEMES = {"ost": "openstack", "aws": "ec2"}
HELM_TYPE = "tosca.nodes.indigo.HelmInstall"


def _hostless_helm(model: DeploymentModel) -> list[str]:
    return [n.name for n in model.nodes.values() if n.derives_from(HELM_TYPE) and n.host is None]


def helm_only(model: DeploymentModel) -> bool:
    """Only Helm releases, none hosted: a template for a cluster that exists."""
    return bool(model.nodes) and len(_hostless_helm(model)) == len(model.nodes)


def unfit(cfg: ProviderConfig, model: DeploymentModel) -> list[str]:
    """What a provider cannot hold because of its kind (beyond its own preflight)."""
    if cfg.type == "kubernetes":
        return []
    return [f'node "{name}" is a Helm release with no host, so it needs an existing Kubernetes cluster, which '
            f'provider {cfg.name} ({cfg.type}) is not: give it a host (a Kubernetes front end of the template) '
            "or deploy with --provider set to a provider of type kubernetes" for name in _hostless_helm(model)]


def candidates(model: DeploymentModel, requested: str | None, max_providers: int) -> list[ProviderConfig]:
    if requested:
        return [config.get(requested)]
    ranked = config.load()
    if helm_only(model):
        ranked = [p for p in ranked if p.type == "kubernetes"]
        if not ranked:
            raise DodasError("the template holds only Helm releases, which go onto an existing Kubernetes "
                             "cluster, and no provider of type kubernetes is configured (add one with its "
                             f"kubeconfig and context to {config.config_file()})")
    else:
        ranked = [p for p in ranked if p.type != "kubernetes"]
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
