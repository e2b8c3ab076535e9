"""What evaluating a deployment's outputs needs of its plan, kept beside it.

`dodas outputs` evaluates the template's outputs over the recorded instances;
planning the stored template again for that costs tosca-parser's whole load
(most of a second), for a handful of expressions. When a plan of the
deployment is at hand (the one `up` just applied, or one made by a read that
had none), the outputs, and the nodes' counts and hosts and the few
properties an output can fall back on, are written as JSON in the deployment's private directory, keyed by the
template's and inputs' hashes and dodas's version; a later read rebuilds that
much of the model and evaluates with the same rule the engine uses
(model/attributes.py). A key that no longer matches (a new template, inputs or
dodas) is planned again, and the frame rewritten. Secrets rest in the state
only: a frame that would hold a secret input's value is not written (that
deployment's outputs are planned at each read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dodas import __version__, paths
from dodas.model.attributes import ADDRESS_ATTRS, RecordedAttributes
from dodas.model.deployment import ComputeSpec, DeploymentModel, Instance, Node, Output
from dodas.model.values import AttrRef, Concat, Join, Token, is_deferred, refs, to_json

if TYPE_CHECKING:
    from dodas.plan.plan import Plan

#: bumped when the frame's shape changes
FORMAT = 1


def _file(dep_id: str) -> Path:
    return paths.data_dir() / "deployments" / paths.component(dep_id) / "outputs-frame.json"


def _key(dep: Any) -> list[str]:
    return [str(FORMAT), __version__, dep.template_sha256 or "", dep.inputs_sha256 or ""]


def save(dep: Any, plan: Plan) -> None:
    """Keep what evaluating `plan`'s outputs needs; a disk that refuses it only
    costs the next read a plan."""
    m = plan.model
    # of the properties, only those an output's get_attribute can fall back on: the
    # attributes they name, and addresses (looked up along the host chain)
    named = {r.attribute for o in m.outputs.values() for r in refs(o.value)} | ADDRESS_ATTRS
    frame = {"key": _key(dep), "template_path": m.template_path, "tosca_version": m.tosca_version,
             "outputs": [{"name": o.name, "value": to_json(o.value), "description": o.description,
                          "sensitive": o.sensitive} for o in m.outputs.values()],
             "nodes": {n.name: {"type": n.type, "count": n.count, "host": n.host, "compute": n.is_compute,
                                "properties": {k: v for k, v in n.properties.items()
                                               if k in named and not is_deferred(v)}}
                       for n in m.nodes.values()}}
    try:
        text = json.dumps(frame, default=str)
    except (TypeError, ValueError):
        return
    secrets = [str(v) for k, v in m.inputs.items() if k in m.secret_inputs and v is not None and str(v)]
    if any(v in text for v in secrets) or any(o.sensitive and not is_deferred(o.value) for o in m.outputs.values()):
        return  # secrets rest in the state only: such a deployment's outputs are planned at each read
    try:
        paths.write_private(_file(dep.id), text)
    except OSError:
        pass


def load(dep: Any) -> DeploymentModel | None:
    """The model's part `save` kept, or None when there is none for this template,
    these inputs and this dodas."""
    try:
        frame = json.loads(_file(dep.id).read_text(encoding="utf-8"))
        if frame.get("key") != _key(dep):
            return None
        nodes = {name: Node(name, n["type"], (n["type"],), n["properties"], [], {}, count=n["count"],
                            compute=ComputeSpec() if n["compute"] else None, host=n["host"])
                 for name, n in frame["nodes"].items()}
        outputs = {o["name"]: Output(o["name"], _expression(o["value"]), o["description"], o["sensitive"])
                   for o in frame["outputs"]}
        return DeploymentModel(template_path=frame["template_path"], template_sha256=dep.template_sha256 or "",
                               tosca_version=frame["tosca_version"], inputs={}, nodes=nodes, outputs=outputs)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _expression(value: Any) -> Any:
    """An output's value from its JSON (model/values.py to_json), back to the
    deferred values it was: outputs name nodes, never SELF or HOST."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, args), = value.items()
        if fn == "get_attribute" and isinstance(args, list) and len(args) >= 2:
            return AttrRef(args[0], args[1], tuple(args[2:]))
        if fn == "concat" and isinstance(args, list):
            return Concat(tuple(_expression(a) for a in args))
        if fn == "join" and isinstance(args, list) and len(args) == 2:
            return Join(tuple(_expression(a) for a in args[0]), args[1])
        if fn == "token" and isinstance(args, list) and len(args) == 3:
            return Token(_expression(args[0]), args[1], args[2])
    if isinstance(value, dict):
        return {k: _expression(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expression(v) for v in value]
    return value


@dataclass
class Recorded(RecordedAttributes):
    """What the state recorded of the instances, for evaluating outputs."""

    model: DeploymentModel
    machines: dict[Instance, Any] = field(default_factory=dict)
    attributes: dict[Instance, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[Instance, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, model: DeploymentModel, rows: dict[tuple[str, int], Any]) -> Recorded:
        """As RunContext.from_rows: a compute row with a provider id is a machine."""
        ctx = cls(model)
        ctx.record_rows(rows, _Addresses)
        return ctx


class _Addresses:
    """A machine as the attribute rule reads it (providers.base.Machine's fields)."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.provider_id = attrs["provider_id"]
        self.public_address = attrs.get("public_address")
        self.private_address = attrs.get("private_address")
