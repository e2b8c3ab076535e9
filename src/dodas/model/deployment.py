"""The deployment model: what a template asks for, independent of TOSCA.

The planner, the engine, the providers and the configuration runner all work on
these classes and never on tosca-parser objects, so a provider or a role can be
written and tested without knowing TOSCA, and the state can rebuild a model from
the stored template text and inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dodas import paths

COMPUTE_TYPE = "tosca.nodes.Compute"

#: Standard lifecycle operations, in the order TOSCA runs them on deploy.
DEPLOY_OPERATIONS = ("create", "configure", "start")
UNDEPLOY_OPERATIONS = ("stop", "delete")

#: Worker types join a cluster that their front end must have set up first, whether
#: or not the template says so (the INDIGO templates rely on this ordering).
IMPLICIT_AFTER = {
    "tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes": "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes",
    "tosca.nodes.indigo.LRMS.WorkerNode.Mesos": "tosca.nodes.indigo.LRMS.FrontEnd.Mesos",
}


#: Attributes dodas generates once per deployment (and keeps as secrets), by node
#: type, before any instance is worked on: reading one orders nothing.
GENERATED_SECRETS = {
    "tosca.nodes.dodas.JupyterLab": ("token",),
    "tosca.nodes.dodas.Spark.Master": ("secret",),
    "tosca.nodes.DODAS.HelmInstall.Spark": ("jupyter_token", "spark_secret"),
    # the pool's IDTOKENS signing key (HTCondor's POOL key)
    "tosca.nodes.dodas.HTCondor.CentralManager": ("signing_key",),
    "tosca.nodes.DODAS.HelmInstall.HTCondor": ("signing_key",),
    # the bearer token of an inference service's uploads
    "tosca.nodes.dodas.Inference": ("token",), "tosca.nodes.DODAS.HelmInstall.Inference": ("token",),
    # the sss key of an XRootD origin's or cluster's clients (caches, data servers)
    "tosca.nodes.dodas.XRootD.Origin": ("secret",),
    "tosca.nodes.dodas.XRootD.Redirector": ("secret",),
    # only when the template gives none (a given one is used, with a warning if weak)
    "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes": ("admin_token",),
}


@dataclass(frozen=True)
class Port:
    """An endpoint port (TOSCA PortSpec). `remote_cidr` (INDIGO's PortSpec) is who may
    reach it from outside the deployment: everyone unless the template narrows it."""

    name: str
    protocol: str
    source: int | None
    target: int | None = None
    remote_cidr: str = "0.0.0.0/0"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "source": self.source, "target": self.target,
                "remote_cidr": self.remote_cidr}


@dataclass(frozen=True)
class ComputeSpec:
    """What a provider needs to make one machine (sizes in MiB)."""

    num_cpus: int | None = None
    mem_mib: int | None = None
    disk_mib: int | None = None
    instance_type: str | None = None
    image: str | None = None
    network: str = "PRIVATE"
    ports: tuple[Port, ...] = ()
    num_gpus: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "num_cpus": self.num_cpus, "mem_mib": self.mem_mib, "disk_mib": self.disk_mib,
            "instance_type": self.instance_type, "image": self.image, "network": self.network,
            "ports": [p.to_json() for p in self.ports], "num_gpus": self.num_gpus,
        }


@dataclass(frozen=True)
class Requirement:
    name: str
    target: str
    relationship: str  # HostedOn, DependsOn, ConnectsTo (short names)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "relationship": self.relationship}


@dataclass(frozen=True)
class Operation:
    """One lifecycle operation; `implementation` is a playbook path (absolute once built)."""

    interface: str
    name: str
    implementation: str | None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HostNeed:
    """Something a node's host must have before its operations run, as its type
    declares it (`model/hostneeds.py` reads the declarations; every provider's
    preflight checks them the same way, `providers/base.py`). One of:

    - JAVA: a Java runtime of major version `version` or newer;
    - PROGRAM: `program` on the PATH, from the distribution's `package`;
      `as_root` when only a host configured as root needs it;
    - DISK: `size` bytes free where `path` is (empty: the instance's own
      directory), as the node's `size_property` and `path_property` say;
    - MACHINE: a host of kind `machine` ("vm": a machine with root, where
      systemd, package managers and kernel modules work).

    The needs of dodas's own types are what their create operation installs on a
    machine dodas configures with root (its roles), and what the local provider
    must find on this machine, where the roles install nothing."""

    kind: str
    version: int = 0
    program: str = ""
    package: str = ""
    as_root: bool = False
    size: int = 0
    size_text: str = ""
    size_property: str = ""
    path: str = ""
    path_property: str = ""
    machine: str = ""


JAVA, PROGRAM, DISK, MACHINE = "java", "program", "disk", "machine"
#: the host kinds a type may ask for (dodas.host.machine)
MACHINE_KINDS = ("vm",)


@dataclass
class Node:
    name: str
    type: str
    #: the type and its ancestors, most specific first
    type_chain: tuple[str, ...]
    properties: dict[str, Any]
    requirements: list[Requirement]
    operations: dict[str, Operation]
    count: int = 1
    compute: ComputeSpec | None = None
    #: the node it is hosted on (HostedOn requirement), if any
    host: str | None = None
    #: what its host must have, declared along its type chain (model/hostneeds.py)
    host_needs: tuple[HostNeed, ...] = ()
    #: a compute's instance indexes when they are not 0..count-1: some were removed by
    #: name (model/indexes.py); None is the usual 0..count-1
    indexes: tuple[int, ...] | None = None

    def instance_indexes(self) -> tuple[int, ...]:
        """This compute's instance indexes, in order (len == count)."""
        return self.indexes if self.indexes is not None else tuple(range(self.count))

    @property
    def is_compute(self) -> bool:
        return self.compute is not None

    def derives_from(self, type_name: str) -> bool:
        return type_name in self.type_chain

    def generated_secrets(self) -> tuple[str, ...]:
        """The attributes dodas generates for this node (unless a property gives them)."""
        return tuple(name for t, names in GENERATED_SECRETS.items() if self.derives_from(t)
                     for name in names if not self.properties.get(name))


@dataclass(frozen=True)
class Instance:
    """One copy of a node: computes have `count` of them, software one per host instance."""

    node: str
    index: int

    @property
    def id(self) -> str:
        return paths.instance_id(self.node, self.index)


@dataclass
class Output:
    name: str
    value: Any
    description: str = ""
    sensitive: bool = False


#: the deployment's inputs hold a count the autoscaler manages as PREFIX + node (model/managed.py)
MANAGED_COUNT_PREFIX = "autoscaler:count:"


@dataclass(frozen=True)
class Policy:
    """An elasticity policy: the autoscaler keeps `node`'s instance count between
    `min_instances` and `max_instances`, adding workers while work waits in
    `workload` and removing those idle for `idle_time` seconds (CLUES's rules).

    It lives with the model (built by `model/elastic.py`, from either a
    `tosca.policies.dodas.Elastic` policy or an INDIGO
    `tosca.nodes.indigo.ElasticCluster` node) so that the plan can carry it
    without the model importing `dodas.elastic`; `dodas.elastic.policy`
    re-exports it for the autoscaler."""

    node: str                  # the scalable Compute node whose count changes (the workers' host)
    #: the input that sets its count (as `dodas scale` changes it), or for a count the template
    #: fixes, the deployment's own value the autoscaler manages (model/managed.py: "autoscaler:count:NODE")
    count_input: str | None
    min_instances: int
    max_instances: int
    idle_time: float           # seconds a worker must be idle before removal (CLUES default 1800)
    max_booting: int           # workers booting at once (CLUES MAX_BOOTING_NODES; default 1)
    cooldown: float            # seconds between two decisions (default 60)
    workload: str              # "spark" | "kubernetes" | "htcondor"
    poll_interval: float       # seconds between two reads of the workload (CLUES: 5)
    boot_timeout: float        # a worker not ready after this is removed and counted as a failure (default 600)
    source: str                # "policy NAME" or "node NAME (tosca.nodes.indigo.ElasticCluster)", for messages
    #: (file, line, col) of the max_instances value, for a located quota error
    #: (`dodas.elastic.policy.check_quota`); not part of the policy's identity or JSON
    max_location: tuple[str, int, int] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "count_input": self.count_input, "min_instances": self.min_instances,
                "max_instances": self.max_instances, "idle_time": self.idle_time, "max_booting": self.max_booting,
                "cooldown": self.cooldown, "workload": self.workload, "poll_interval": self.poll_interval,
                "boot_timeout": self.boot_timeout, "source": self.source,
                "count_managed": self.count_managed}

    @property
    def count_managed(self) -> bool:
        """Whether the count is the autoscaler's own value, not a template input (model/managed.py)."""
        return str(self.count_input or "").startswith(MANAGED_COUNT_PREFIX)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        """The policy of a plan's JSON (`policies` in `dodas plan --json`)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k != "max_location"})


@dataclass
class DeploymentModel:
    template_path: str
    template_sha256: str
    tosca_version: str
    inputs: dict[str, Any]
    nodes: dict[str, Node]
    outputs: dict[str, Output]
    description: str = ""
    #: inputs that look like secrets, never printed
    secret_inputs: frozenset[str] = frozenset()
    #: clouds the template's placement policies pin it to (cloud ids / SLA ids)
    placement: tuple[str, ...] = ()
    #: located warnings (deprecated versions, placeholder tokens): shown, never fatal
    warnings: list[Any] = field(default_factory=list)
    #: elasticity policies (model/elastic.py), at most one per node
    elastic: tuple[Policy, ...] = ()
    #: the tosca.nodes.indigo.ElasticCluster nodes that became policies: declarations
    #: the autoscaler carries out, so deployable though they run nothing themselves
    elastic_clusters: frozenset[str] = frozenset()
    #: None on the user's own machine; on a server, what its operator lets its
    #: workers reach beyond public addresses (`fetch_allow`): set by the server's
    #: planning (services/untrusted.py), it makes operations fetch through
    #: dodas.outbound only (engine/context.py hands it to them)
    fetch_allow: tuple[str, ...] | None = None

    def images(self) -> set[str]:
        return {n.compute.image for n in self.nodes.values() if n.compute and n.compute.image}

    def image_schemes(self) -> set[str]:
        return {i.split("://", 1)[0] for i in self.images() if "://" in i}

    def image_hosts(self) -> set[str]:
        """HOST of every `ost://HOST/ID` or `aws://REGION/ami-...` image: who can serve it."""
        out = set()
        for n in self.nodes.values():
            image = n.compute.image if n.compute else None
            if image and "://" in image:
                out.add(image.split("://", 1)[1].split("/", 1)[0])
        return out

    def instances_of(self, node: str) -> list[Instance]:
        return [Instance(node, i) for i in self.indexes(node)]

    def indexes(self, node: str) -> tuple[int, ...]:
        """The instance indexes of `node`: its own for a compute, its host's for what
        a host carries (a Spark worker on worker_hosts[3] is spark_worker[3])."""
        n = self.nodes[node]
        if n.host is None:
            return n.instance_indexes()
        return self.indexes(n.host)

    def instance_count(self, node: str) -> int:
        n = self.nodes[node]
        if n.host is None:
            return n.count
        return self.instance_count(n.host)

    def host_compute(self, node: str) -> str | None:
        """The compute node at the bottom of `node`'s host chain (itself if compute)."""
        seen = set()
        cur: str | None = node
        while cur is not None and cur not in seen:
            seen.add(cur)
            n = self.nodes[cur]
            if n.is_compute:
                return cur
            cur = n.host
        return None
