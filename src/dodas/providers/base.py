"""The provider interface: make, find and remove compute instances.

A provider knows one infrastructure API and nothing of TOSCA, the plan or
Ansible (nor of applications: what a node needs of its host, its type declares,
and `host_problems` checks it the same way for every provider). The engine
gives it a `ComputeRequest` and gets back a `Machine`: an address and how to
reach it. Every call must be idempotent, keyed by
(deployment id, instance id): `create` after a crash finds what it made before
instead of making another, `delete` of something already gone succeeds.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dodas.errors import DodasError
from dodas.model.deployment import DISK, JAVA, MACHINE, PROGRAM, ComputeSpec, DeploymentModel, HostNeed
from dodas.model.network import Ingress
from dodas.ssh_access import Endpoint


class ProviderError(DodasError):
    """A provider call failed. `transient` errors are retried with backoff."""

    def __init__(self, provider: str, message: str, *, transient: bool = False) -> None:
        super().__init__(f"provider {provider}: {message}")
        self.provider = provider
        self.transient = transient


@dataclass(frozen=True)
class ComputeRequest:
    deployment_id: str
    deployment_name: str
    instance_id: str  # "worker_hosts[1]"
    spec: ComputeSpec


@dataclass
class Machine:
    """A compute instance as the rest of dodas sees it."""

    provider_id: str
    public_address: str | None
    private_address: str | None
    #: Ansible connection: "local" for this machine, "ssh" otherwise
    connection: str = "ssh"
    ssh_user: str | None = None
    ssh_port: int = 22
    ssh_key_file: str | None = None
    #: facts the roles honour: num_cpus, mem_mib, workdir, python ...
    facts: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        return {
            "provider_id": self.provider_id, "public_address": self.public_address,
            "private_address": self.private_address, "connection": self.connection,
            "ssh_user": self.ssh_user, "ssh_port": self.ssh_port, "ssh_key_file": self.ssh_key_file,
            "facts": self.facts,
        }

    def endpoint(self) -> Endpoint:
        """Where dodas logs in: the public address when there is one, else the
        private one (through a bastion, unless this machine is inside the network)."""
        address = self.public_address or self.private_address
        if not address:
            raise ValueError(f"machine {self.provider_id} has no address")
        return Endpoint(address, self.ssh_port, self.ssh_user, self.ssh_key_file)

    @classmethod
    def from_attributes(cls, attrs: dict[str, Any]) -> Machine:
        return cls(provider_id=attrs["provider_id"], public_address=attrs.get("public_address"),
                   private_address=attrs.get("private_address"), connection=attrs.get("connection", "ssh"),
                   ssh_user=attrs.get("ssh_user"), ssh_port=attrs.get("ssh_port", 22),
                   ssh_key_file=attrs.get("ssh_key_file"), facts=attrs.get("facts") or {})


@dataclass(frozen=True)
class ProcessRef:
    """A process a service record names: its pid and when it started.

    `start` is clock ticks since the host booted (field 22 of /proc/PID/stat, as
    `dodas_service` records it); None for records written before it was kept,
    which can only be checked by pid."""

    pid: int
    start: str | None = None

    @classmethod
    def from_record(cls, record: Any) -> ProcessRef | None:
        """From a service record of an instance's attributes ({pid, pgid, start, log})."""
        if not isinstance(record, dict):
            return None
        try:
            pid = int(record.get("pid") or 0)
        except (TypeError, ValueError):
            return None
        if pid <= 0:
            return None
        start = str(record.get("start") or "").strip()
        return cls(pid, start if start and start not in ("?", "None", "none", "null") else None)

    def __str__(self) -> str:
        return f"{self.pid}:{self.start or '?'}"


class HostProbe(abc.ABC):
    """A provider's host as preflight can look at it before anything is made (the
    local provider's: this machine). It answers questions; `host_problems` turns
    the answers into sentences, the same for every provider."""

    #: where the host is, as a message says it
    where: str = "on this machine"
    #: the kind of host it is (a node type's `dodas.host.machine` need names one)
    machine: str = "vm"
    #: what a message adds when a node needs another kind of host: who can give one
    machine_elsewhere: str = ""

    @abc.abstractmethod
    def java(self, minimum: int, needed_by: str) -> str | None:
        """None when a Java of major version `minimum` or newer works there; else
        a sentence beginning with `needed_by` that says what to install."""

    @abc.abstractmethod
    def has_program(self, name: str) -> bool:
        """Whether `name` is a program on the host's PATH."""

    @abc.abstractmethod
    def as_root(self) -> bool:
        """Whether the host's operations run as root."""

    @abc.abstractmethod
    def free_disk(self, path: str) -> tuple[str, int]:
        """(the directory looked at, its free bytes) for `path`: its nearest existing
        directory, or the instances' own directory when `path` is empty."""


class Provider(abc.ABC):
    """One infrastructure. Subclasses implement the three async calls."""

    #: the provider's configured name ("local", "cloud-a", ...)
    name: str = ""
    #: what kind of hosts it gives: "process" (a directory and an address on this
    #: machine) or "vm" (a machine with root that systemd, kubeadm etc. can use)
    host_kind: str = "vm"
    #: first backoff delay of retried calls, in seconds (doubling, with jitter)
    retry_base: float = 0.5
    #: how machines without a public address are reached: None (through the
    #: deployment's bastion, see plan.graph.bastion), an Endpoint (an existing
    #: bastion, the provider's `bastion:` option) or False (`bastion: false`: this
    #: machine is inside the private network and reaches them directly)
    bastion: Endpoint | bool | None = None
    #: a deleted machine's addresses may be given to another machine next (a
    #: cloud's), so its host keys are forgotten; an ssh pool's hosts outlive claims
    ephemeral_hosts: bool = True
    #: the deployment this provider object serves, when it exists already (set by
    #: services/deploy.py before preflight: what it holds counts as available to it)
    deployment_id: str | None = None
    #: how long dodas keeps trying to log in to a new machine (`login_timeout:`)
    login_timeout: float = 300.0
    #: the operator accepts a plan beyond the capacity the provider can check
    #: itself (the local provider: this machine's cores and memory); quotas a
    #: cloud enforces are not lifted by it
    overcommit: bool = False

    #: the kinds of host needs (`HostNeed.kind`) that dodas's roles install on this
    #: provider's hosts before a node's operations use them: on a machine with
    #: root, a node's create operation installs the Java and packages its type
    #: declares. Disk is no role's to give.
    roles_install: frozenset[str] = frozenset({JAVA, PROGRAM})

    def preflight(self, model: DeploymentModel) -> list[str]:
        """Problems known before anything is created (unsupported nodes, missing
        tools, unknown images): each a sentence naming the cause."""
        return self.host_problems(model)

    def host_probe(self) -> HostProbe | None:
        """The hosts as preflight can look at them; None when they do not exist yet
        (a cloud's: a cache's disk is checked against its host's declared disk_size
        by the model) or are not looked at before they are configured (an ssh pool)."""
        return None

    def host_problems(self, model: DeploymentModel) -> list[str]:
        """What the nodes' types declare their hosts need (`Node.host_needs`) and
        neither dodas's roles install here (`roles_install`) nor the hosts have
        (`host_probe`); every provider's preflight includes it."""
        return host_problems(model, self.host_probe(), self.roles_install)

    async def prepare(self, deployment_id: str, deployment_name: str, ingress: tuple[Ingress, ...]) -> None:
        """Make (or bring up to date) what the deployment's machines share before any
        is created: on a cloud, the key pair and the security group, whose rules
        become exactly `ingress` (from the plan: `model.network.ingress_rules`) plus
        SSH from the operator and everything between the deployment's own machines.
        Called on every `up`, so rules added or removed in the template follow."""
        return None

    def controller_variables(self) -> dict[str, Any]:
        """Variables for the operations dodas runs on this machine (software with
        no host): a kubernetes provider names its cluster here."""
        return {}

    @abc.abstractmethod
    async def create(self, req: ComputeRequest) -> Machine:
        """Make the instance, or return the one already made for this request."""

    @abc.abstractmethod
    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        """Remove the instance and everything made for it; succeed if it is gone."""

    @abc.abstractmethod
    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        """The instance if it exists."""

    async def check(self) -> str:
        """Authenticate and say who we are; ProviderError (naming the cause) if not."""
        return "nothing to check"

    async def resources(self, deployment_id: str) -> list[str]:
        """Ids of everything this provider holds for a deployment (leak checks, destroy)."""
        return []

    async def purge(self, deployment_id: str) -> None:
        """Delete everything `resources` finds for a deployment (after a crash lost
        part of the state, the tags are what is left to go by)."""
        return None

    async def processes_alive(self, machine: Machine, recorded: list[ProcessRef]) -> dict[ProcessRef, bool] | None:
        """Whether recorded processes still run on a machine, by identity: a pid that
        now names a process started at another time is not alive. None when the
        provider cannot tell cheaply."""
        return None


def host_problems(model: DeploymentModel, probe: HostProbe | None, roles_install: frozenset[str]) -> list[str]:
    """Each unmet host need as a sentence naming the nodes and what to install or
    change; nodes missing the same things are named together."""
    wanted = [(n, need) for n in model.nodes.values() for need in n.host_needs if need.kind not in roles_install]
    if probe is None or not wanted:
        return []
    problems = [f'node "{n.name}" ({n.type}) needs {_MACHINES.get(need.machine, need.machine)}, which '
                f"{probe.machine_elsewhere or 'this provider cannot give'}"
                for n, need in wanted if need.kind == MACHINE and need.machine != probe.machine]
    # a node this host cannot take at all: what else it would need here does not matter
    refused = {n.name for n, need in wanted if need.kind == MACHINE and need.machine != probe.machine}
    wanted = [(n, need) for n, need in wanted if n.name not in refused]
    for version in sorted({need.version for _, need in wanted if need.kind == JAVA}):
        names = [n.name for n, need in wanted if need.kind == JAVA and need.version == version]
        problem = probe.java(version, f"{_nodes(names)} need{'s' if len(names) == 1 else ''}")
        if problem:
            problems.append(problem)
    missing: dict[str, set[HostNeed]] = {}
    for n, need in wanted:
        if need.kind == PROGRAM and (probe.as_root() or not need.as_root) and not probe.has_program(need.program):
            missing.setdefault(n.name, set()).add(need)
    groups: dict[frozenset[HostNeed], list[str]] = {}
    for name, needs in missing.items():
        groups.setdefault(frozenset(needs), []).append(name)
    for needs, names in groups.items():
        programs = sorted(need.program for need in needs)
        one = len(names) == 1
        problems.append(f"{_nodes(names)} run{'s' if one else ''} {', '.join(programs)} {probe.where}, which "
                        f"{'is' if len(programs) == 1 else 'are'} not installed: apt-get install "
                        + " ".join(sorted({need.package for need in needs})))
    for n, need in wanted:
        if need.kind == DISK:
            where, free = probe.free_disk(need.path)
            if need.size > free:
                problems.append(f'node "{n.name}" asks for {need.size_text} ({need.size_property}) but {where} has '
                                f"{free / 2**30:.1f} GiB free {probe.where}: lower {need.size_property} or give a "
                                f"{need.path_property} on a larger disk")
    return problems


#: a kind of host, as a message says it
_MACHINES = {"vm": "a virtual machine with root"}


def _nodes(names: Iterable[str]) -> str:
    """'node "a"' or 'the nodes "a", "b"', for a message."""
    names = list(names)
    return f'node "{names[0]}"' if len(names) == 1 else "the nodes " + ", ".join(f'"{n}"' for n in names)
