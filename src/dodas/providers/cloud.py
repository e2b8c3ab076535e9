"""What every cloud provider (ec2.py, openstack.py) does the same way.

A cloud deployment shares two things between its machines, both named
`dodas-<deployment id>` and both made by `prepare` before any machine: the key
pair (the public half of `keys.ensure`; the private half never leaves this
machine) and the security group. The group's inbound rules are always exactly

- SSH (22/tcp) from the provider's `ssh_from` (one CIDR or a list),
- everything from the group itself (the deployment's machines reach each other
  on any port: Spark's master port, Kubernetes' API, ...), and
- the plan's `ingress` (`model.network.ingress_rules`): the template's endpoint
  ports, each from its `remote_cidr` (everyone when not narrowed);

on every `up` the rules in the cloud are compared with these and the difference
is applied: missing rules authorised, any other rule revoked, so ports added to
or removed from a template follow it. A cloud module only translates `Rule`s to
and from its API (`_ensure_key_pair`, `_ensure_group`, `_group_rules`,
`_authorize`, `_revoke`); a "scope" is where the pair lives (an EC2 region; one
place on OpenStack). Creates run in threads side by side, so the shared pair is
set up under a per-deployment lock, once per scope and process unless `prepare`
asks again.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.model.deployment import ComputeSpec
from dodas.model.network import Ingress
from dodas.providers import keys
from dodas.providers.base import Machine, Provider
from dodas.providers.config import ProviderConfig

#: a rule's remote end that is the deployment's own security group
SELF = "self"
#: the protocol of a rule that allows every protocol (EC2's spelling; OpenStack's is none)
ALL = "-1"
#: where a machine's files go, below a directory per deployment and instance
WORKDIR_BASE = "/var/tmp/dodas"


@dataclass(frozen=True, order=True)
class Rule:
    """One inbound rule: `protocol` on ports `low`..`high` (None: every port) from
    `remote`: a CIDR, `SELF`, or a cloud's own reference to something else (another
    group, a prefix list) that dodas never makes and so always revokes."""

    protocol: str
    low: int | None
    high: int | None
    remote: str


def resource_name(deployment_id: str) -> str:
    """The name of a deployment's key pair and security group."""
    return f"dodas-{deployment_id}"


class Record:
    """A small JSON document a provider keeps per deployment in the data directory
    (`KIND/PROVIDER/DEPLOYMENT.json`, mode 0600): what it must know before the cloud
    can tell it. Every change is written whole before the caller goes on."""

    def __init__(self, kind: str, provider: str, deployment_id: str) -> None:
        self.path: Path = paths.data_dir() / kind / paths.component(provider) / f"{paths.component(deployment_id)}.json"
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any] | None:
        """The record, None if there is none ({} if it cannot be read)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            data = {}
        return data if isinstance(data, dict) else {}

    def change(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply `fn(record)` (it may change the record in place), write, return fn's result."""
        with self._lock:
            rec = self.read() or {}
            result = fn(rec)
            paths.write_private(self.path, json.dumps(rec, sort_keys=True))
            return result

    def remove(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)


class CloudProvider(Provider):
    """A provider of VMs in a cloud with key pairs and security groups."""

    host_kind = "vm"

    def __init__(self, cfg: ProviderConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg
        o = cfg.options
        self.ssh_user = o.get("ssh_user", "ubuntu")
        ssh_from = o.get("ssh_from", "0.0.0.0/0")
        self.ssh_from: tuple[str, ...] = tuple(ssh_from) if isinstance(ssh_from, (list, tuple)) else (ssh_from,)
        # `wait_ssh` is still accepted and ignored: the engine waits for SSH itself
        #: per deployment: (name, ingress) as the last `prepare` gave them
        self._plans: dict[str, tuple[str, tuple[Ingress, ...]]] = {}
        #: per (deployment, scope): (key pair name, group) once set up in this process
        self._shared: dict[tuple[str, Any], tuple[str, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # -- what a cloud module implements ---------------------------------------------
    def _ensure_key_pair(self, deployment_id: str, scope: Any) -> str:
        """Import the deployment's public key as `resource_name` if missing; its name."""
        raise NotImplementedError

    def _ensure_group(self, deployment_id: str, deployment_name: str, scope: Any) -> Any:
        """The deployment's security group, made (without rules) if missing."""
        raise NotImplementedError

    def _group_rules(self, group: Any, scope: Any) -> dict[Rule, Any]:
        """The group's inbound rules, each with what `_revoke` needs to remove it."""
        raise NotImplementedError

    def _authorize(self, group: Any, scope: Any, rules: list[Rule]) -> None:
        raise NotImplementedError

    def _revoke(self, group: Any, scope: Any, rules: dict[Rule, Any]) -> None:
        raise NotImplementedError

    def _prepare_scopes(self, deployment_id: str) -> list[Any]:
        """Where `prepare` sets the shared pair up (the rest is done when a machine
        is first made there)."""
        return [None]

    def _before_setup(self, deployment_id: str, scope: Any) -> None:
        """Called before anything is made in a scope (EC2 records the region)."""

    # -- the shared pair ----------------------------------------------------------------
    def desired_rules(self, ingress: tuple[Ingress, ...]) -> set[Rule]:
        """SSH from `ssh_from`, everything from the group itself, and `ingress`."""
        rules = {Rule("tcp", 22, 22, c) for c in self.ssh_from} | {Rule(ALL, None, None, SELF)}
        return rules | {Rule(i.protocol, i.port, i.port, i.cidr) for i in ingress}

    @staticmethod
    def rule_diff(desired: set[Rule], existing: dict[Rule, Any]) -> tuple[list[Rule], dict[Rule, Any]]:
        """(rules to authorise, rules to revoke with their handles)."""
        return sorted(desired - existing.keys()), {r: h for r, h in existing.items() if r not in desired}

    def _lock(self, deployment_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(deployment_id, threading.Lock())

    def shared(self, deployment_id: str, scope: Any = None, *, again: bool = False) -> tuple[str, Any]:
        """(key pair name, security group) of a deployment in a scope, set up and its
        rules reconciled the first time in this process (or when `again`)."""
        with self._lock(deployment_id):
            done = self._shared.get((deployment_id, scope))
            if done is not None and not again:
                return done
            plan = self._plans.get(deployment_id)
            name = plan[0] if plan else deployment_id
            self._before_setup(deployment_id, scope)
            key_name = self._ensure_key_pair(deployment_id, scope)
            group = self._ensure_group(deployment_id, name, scope)
            existing = self._group_rules(group, scope)
            add, extra = self.rule_diff(self.desired_rules(plan[1] if plan else ()), existing)
            if add:
                self._authorize(group, scope, add)
            if extra and plan is not None:  # without a plan's ingress, nothing is known to be extra
                self._revoke(group, scope, extra)
            self._shared[(deployment_id, scope)] = (key_name, group)
            return key_name, group

    async def prepare(self, deployment_id: str, deployment_name: str, ingress: tuple[Ingress, ...]) -> None:
        self._plans[deployment_id] = (deployment_name, tuple(ingress))

        def run() -> None:
            for scope in self._prepare_scopes(deployment_id):
                self.shared(deployment_id, scope, again=True)
        await asyncio.to_thread(run)

    def forget(self, deployment_id: str) -> None:
        """After a purge: nothing of the deployment is set up any more."""
        for k in [k for k in self._shared if k[0] == deployment_id]:
            del self._shared[k]
        keys.remove(deployment_id)

    # -- machines ------------------------------------------------------------------------
    def machine(self, provider_id: str, deployment_id: str, instance_id: str, spec: ComputeSpec | None,
                public: str | None, private: str | None, **facts: Any) -> Machine:
        """A Machine reached over SSH with the deployment's key, its work directory
        below WORKDIR_BASE."""
        return Machine(provider_id=provider_id, public_address=public, private_address=private, connection="ssh",
                       ssh_user=self.ssh_user, ssh_key_file=str(keys.private_key_path(deployment_id)),
                       facts={"num_cpus": spec.num_cpus if spec else None, "mem_mib": spec.mem_mib if spec else None,
                              "workdir": paths.host_dir(WORKDIR_BASE, deployment_id, instance_id), **facts})
