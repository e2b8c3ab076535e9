"""What dodas can deploy, and what it only knows.

The type library declares the INDIGO-DataCloud and DODAS type families so that
their templates validate as written; many of those types (Mesos, Marathon
applications, Slurm, Galaxy, OneData, ...) come with no dodas playbooks. A node of
such a type would be "deployed" as nothing, so `plan` and `up` refuse it, naming
the node, its type and what dodas offers instead; `validate` accepts it and says
it is known only.

A node is deployable when it is a machine (a provider makes it), when one of its
lifecycle operations has an implementation that exists (a playbook dodas runs), or when its
type is not one of those families (a plain SoftwareComponent is the user's to
fill, and doing nothing is what it asks for). The families are the type-name
prefixes below and every type only the published declarations bring
(`tosca.nodes.WebServer.Apache` is INDIGO's, whatever its name says).
"""

from __future__ import annotations

from pathlib import Path

from dodas.model.deployment import DeploymentModel, Node

#: the families whose types dodas declares for templates' sake
FAMILIES = ("tosca.nodes.indigo.", "tosca.nodes.DODAS.", "tosca.nodes.dodas.")

KUBERNETES = "Kubernetes types are (tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes and WorkerNode.Kubernetes)"
HELM = "a Helm release on Kubernetes is (tosca.nodes.indigo.HelmInstall, tosca.nodes.DODAS.HelmInstall.*)"

#: type name prefix -> what dodas offers instead (most specific first)
INSTEAD: tuple[tuple[str, str], ...] = (
    ("tosca.nodes.indigo.LRMS.FrontEnd.Mesos", f"Mesos is not supported; {KUBERNETES}"),
    ("tosca.nodes.indigo.LRMS.WorkerNode.Mesos", f"Mesos is not supported; {KUBERNETES}"),
    ("tosca.nodes.indigo.Mesos", f"Mesos is not supported; {KUBERNETES}"),
    ("tosca.nodes.indigo.SparkMesos", "Spark on Mesos is not supported; Spark standalone (tosca.nodes.dodas.Spark.*) "
                                      "and Spark by Helm (tosca.nodes.DODAS.HelmInstall.Spark) are"),
    ("tosca.nodes.indigo.Container.Application.Docker", f"Marathon and Chronos applications are not supported; {HELM}"),
    ("tosca.nodes.indigo.Container", f"Docker containers on Mesos are not supported; {HELM}"),
    ("tosca.nodes.indigo.LRMS", f"this batch system is not supported; {KUBERNETES}"),
    ("tosca.nodes.indigo.ElasticCluster", "dodas's autoscaler watches Spark, Kubernetes and HTCondor clusters, "
                                          "not this batch system; scale with `dodas scale`"),
    ("tosca.nodes.indigo.Galaxy", "Galaxy is not supported"),
    ("tosca.nodes.indigo.Onedata", "OneData is not supported"),
    ("tosca.nodes.indigo.OneData", "OneData is not supported"),
)


def known_only(node: Node, model: DeploymentModel | None = None) -> str | None:
    """Why dodas cannot deploy `node` (what it offers instead), or None if it can.

    An ElasticCluster that became an elasticity policy of `model`
    (model/elastic.py) is deployable: a declaration the autoscaler carries out."""
    if node.is_compute or any(_exists(op.implementation) for op in node.operations.values()):
        return None
    if model is not None and node.name in model.elastic_clusters:
        return None
    if not of_a_family(node.type_chain):
        return None
    for prefix, instead in INSTEAD:
        if any(t.startswith(prefix) for t in node.type_chain):
            return instead
    return "dodas has no playbooks for this type"


def of_a_family(chain: list[str] | tuple[str, ...]) -> bool:
    """Whether a type (its chain, itself first) is one the library declares for
    templates' sake: by its family's name, or declared by the published files only."""
    from dodas.tosca import typelib

    published = typelib.published_only()
    return any(t.startswith(FAMILIES) or t in published for t in chain)


def _exists(implementation: str | None) -> bool:
    """An operation dodas can run: a playbook file that is there (the library names
    playbooks for some types that dodas does not ship), or a URL."""
    if not implementation:
        return False
    return "://" in implementation or Path(implementation).is_file()


def known_only_nodes(model: DeploymentModel) -> dict[str, str]:
    """node name -> why it cannot be deployed, for every such node of the model."""
    return {name: why for name, node in model.nodes.items() if (why := known_only(node, model)) is not None}
