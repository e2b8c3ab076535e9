"""What the engine knows at run time, and the values built from it.

`RunContext` holds the machines and the recorded attributes of every instance
and answers `get_attribute` for deferred values; it builds the variables each
operation runs with, and the fingerprint that says whether an instance's
configuration changed since it last ran.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.model.attributes import ADDRESS_ATTRS, RecordedAttributes, UnresolvedError
from dodas.model.deployment import DeploymentModel, Instance, Node
from dodas.providers.base import Machine
from dodas.redact import register

__all__ = ["ADDRESS_ATTRS", "RunContext", "UnresolvedError"]


@dataclass
class RunContext(RecordedAttributes):
    model: DeploymentModel
    deployment_id: str
    deployment_name: str
    machines: dict[Instance, Machine] = field(default_factory=dict)
    attributes: dict[Instance, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[Instance, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, model: DeploymentModel, deployment_id: str, deployment_name: str,
                  rows: dict[tuple[str, int], Any]) -> RunContext:
        """A context holding what the state recorded: the machines of compute rows,
        the attributes (without dodas's own `_` keys) and secrets of the others."""
        ctx = cls(model, deployment_id, deployment_name)
        ctx.record_rows(rows, Machine.from_attributes)
        return ctx

    # -- placement (compute_of, machine_of) and attributes (lookup, evaluate): RecordedAttributes
    def instance_dir(self, inst: Instance) -> str:
        m = self.machine_of(inst)
        if m is not None and m.facts.get("workdir"):
            return paths.node_dir(m.facts["workdir"], inst.node)
        return str(paths.data_dir() / "deployments" / paths.component(self.deployment_id) / "controller"
                   / paths.instance_component(inst.id))

    # -- secrets -------------------------------------------------------------
    def ensure_secrets(self, inst: Instance) -> dict[str, str]:
        """Generate the instance's secrets once; return those that are new."""
        new: dict[str, str] = {}
        have = self.secrets.setdefault(inst, {})
        for name in self.model.nodes[inst.node].generated_secrets():
            if name not in have:
                have[name] = new[name] = secrets.token_urlsafe(32)
        register(*(v for v in have.values() if isinstance(v, str)))
        return new

    # -- operation variables ---------------------------------------------------
    def variables(self, inst: Instance, node: Node, op_inputs: dict[str, Any]) -> dict[str, Any]:
        """Everything an operation's playbook gets, with deferred values resolved."""
        out = {k: self.evaluate(v, inst) for k, v in op_inputs.items()}
        out.update({
            "dodas_deployment": self.deployment_name,
            "dodas_deployment_id": self.deployment_id,
            "dodas_node": inst.node,
            "dodas_instance": inst.id,
            "dodas_instance_dir": self.instance_dir(inst),
            "dodas_properties": self.evaluate(node.properties, inst),
            "dodas_requirements": self._requirements(inst, node),
            "dodas_connected": self._connected(inst),
        })
        if self.model.fetch_allow is not None:
            out["dodas_fetch_allow"] = list(self.model.fetch_allow)
        return out

    def _describe(self, inst: Instance, *, with_secrets: bool = False) -> dict[str, Any]:
        m = self.machine_of(inst)
        out = {"id": inst.id, "node": inst.node,
               "address": (m.private_address or m.public_address) if m else None,
               "public_address": m.public_address if m else None,
               "attributes": self.attributes.get(inst, {})}
        if with_secrets:
            out["secrets"] = dict(self.secrets.get(inst, {}))
        return out

    def _requirements(self, inst: Instance, node: Node) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for req in node.requirements:
            if req.target not in self.model.nodes:
                continue
            if req.relationship == "HostedOn":
                targets = [Instance(req.target, inst.index)]
            else:
                targets = self.model.instances_of(req.target)
            # what an instance requires, it is a client of: it gets the service's
            # credentials (a Spark worker, the master's secret); never the other way
            out.setdefault(req.name, []).extend(self._describe(t, with_secrets=True) for t in targets)
        return out

    def _connected(self, inst: Instance) -> list[dict[str, Any]]:
        out = []
        for other in self.model.nodes.values():
            for req in other.requirements:
                if req.target == inst.node and req.relationship != "HostedOn":
                    for o in self.model.instances_of(other.name):
                        out.append({**self._describe(o), "requirement": req.name})
        return out

    def fingerprint(self, inst: Instance, node: Node) -> str:
        """What a configuration run depends on: a change in any of it means re-run."""
        return _digest(self._configuration(inst, node))

    def fingerprint_parts(self, inst: Instance, node: Node) -> dict[str, str]:
        """The fingerprint's parts, each digested on its own and named as a user
        reads it ("property worker_cores", "playbook of start"): what `plan` compares
        to say *why* an instance is reconfigured. Digests only, salted with the
        deployment's id: the state keeps them beside the rows, never the values."""
        data = self._configuration(inst, node)
        salt = self.deployment_id
        parts = {"type": _digest(data["type"], salt), "machine": _digest(data["machine"], salt),
                 "generated secrets": _digest(data["secrets"], salt)}
        for name, value in data["properties"].items():
            parts[f"property {name}"] = _digest(value, salt)
        for name, op in data["ops"].items():
            parts[f"playbook of {name}"] = _digest([op["impl"], op["impl_sha"]], salt)
            for key, value in op["inputs"].items():
                parts[f"input {key} of {name}"] = _digest(value, salt)
        for name, targets in data["requirements"].items():
            parts[f"requirement {name}"] = _digest(targets, salt)
        return parts

    def _configuration(self, inst: Instance, node: Node) -> dict[str, Any]:
        ops = {}
        for name, op in sorted(node.operations.items()):
            impl = op.implementation or ""
            ops[name] = {"impl": impl, "impl_sha": _file_sha(impl),
                         "inputs": self.evaluate(op.inputs, inst)}
        m = self.machine_of(inst)
        return {"type": node.type, "ops": ops, "properties": self.evaluate(node.properties, inst),
                "requirements": {k: [(d["id"], d["address"], d["secrets"]) for d in v]
                                 for k, v in self._requirements(inst, node).items()},
                "machine": (m.private_address, m.public_address, m.facts.get("num_cpus"),
                            m.facts.get("mem_mib")) if m else None,
                "secrets": self.secrets.get(inst, {})}


def _digest(value: Any, salt: str = "") -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256((salt + "\0" + text if salt else text).encode()).hexdigest()


_sha_cache: dict[str, str] = {}


def _file_sha(path: str) -> str:
    """A playbook's digest. A bundled playbook runs dodas's roles, modules and
    templates too: a change in any of them (a new dodas) must run it again."""
    if path not in _sha_cache:
        try:
            digest = hashlib.sha256(Path(path).read_bytes())
        except OSError:
            _sha_cache[path] = ""
            return ""
        if Path(path).resolve().is_relative_to(paths.PLAYBOOKS_DIR):
            digest.update(_bundle_sha().encode())
        _sha_cache[path] = digest.hexdigest()
    return _sha_cache[path]


def _bundle_sha() -> str:
    if "bundle" not in _sha_cache:
        digest = hashlib.sha256()
        for sub in ("roles", "library", "filter_plugins"):
            for f in sorted((paths.PLAYBOOKS_DIR / sub).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    digest.update(str(f.relative_to(paths.PLAYBOOKS_DIR)).encode() + b"\0" + f.read_bytes())
        _sha_cache["bundle"] = digest.hexdigest()
    return _sha_cache["bundle"]
