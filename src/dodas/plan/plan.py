"""The plan: every instance, what it waits for, its wave, and what stays deferred.

`Plan.to_json()` is the documented, stable `dodas plan --json` format (see
docs/PLAN_FORMAT.md); add fields, never rename or remove them without raising
`format_version`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dodas.model.deployment import DeploymentModel, Instance, Node
from dodas.model.values import deferred_paths, is_deferred, to_json
from dodas.model.support import known_only
from dodas.plan import graph
from dodas.redact import MASK
from dodas.yamlsource import SourceMap

FORMAT_VERSION = 1


@dataclass
class PlannedInstance:
    instance: Instance
    node: Node
    depends_on: list[Instance]
    wave: int

    @property
    def id(self) -> str:
        return self.instance.id

    @property
    def host(self) -> Instance | None:
        return Instance(self.node.host, self.instance.index) if self.node.host else None


@dataclass
class Plan:
    model: DeploymentModel
    instances: dict[Instance, PlannedInstance]
    waves: list[list[Instance]]
    #: the machine private machines are reached through (see graph.bastion)
    bastion: Instance | None = None
    #: required inputs without a value, standing for any value of their type (validate)
    unknown_inputs: frozenset[str] = frozenset()
    #: machines removed by name (`up --remove`, IM's removal_list, the autoscaler's choice, a lost
    #: worker replaced), with why
    removed: dict[Instance, str] = field(default_factory=dict)

    def compute_instances(self) -> list[PlannedInstance]:
        return [p for p in self.instances.values() if p.node.is_compute]

    def deferred(self) -> list[dict[str, Any]]:
        out = []
        for p in self.instances.values():
            for where, expr in deferred_paths(p.node.properties, "properties"):
                out.append({"instance": p.id, "where": where, "value": to_json(expr)})
            for op in p.node.operations.values():
                for where, expr in deferred_paths(op.inputs, f"operations.{op.name}.inputs"):
                    out.append({"instance": p.id, "where": where, "value": to_json(expr)})
        for o in self.model.outputs.values():
            if is_deferred(o.value):
                out.append({"instance": None, "where": f"outputs.{o.name}", "value": to_json(o.value)})
        return out

    def to_json(self) -> dict[str, Any]:
        m = self.model
        return {
            "format_version": FORMAT_VERSION,
            "template": m.template_path,
            "template_sha256": m.template_sha256,
            "tosca_definitions_version": m.tosca_version,
            "inputs": {k: (MASK if k in m.secret_inputs else to_json(v)) for k, v in sorted(m.inputs.items())},
            "nodes": [{
                "name": n.name, "type": n.type, "instances": m.instance_count(n.name),
                "host": n.host, "requirements": [r.to_json() for r in n.requirements],
                "operations": {k: op.implementation for k, op in sorted(n.operations.items())},
                "deployable": known_only(n, m) is None,
            } for n in m.nodes.values()],
            "instances": [{
                "id": p.id, "node": p.node.name, "index": p.instance.index, "type": p.node.type,
                "kind": "compute" if p.node.is_compute else "software",
                "host": p.host.id if p.host else None,
                "wave": p.wave,
                "depends_on": sorted(d.id for d in p.depends_on),
                "compute": p.node.compute.to_json() if p.node.compute else None,
                "properties": _masked(to_json(p.node.properties)),
            } for p in self._ordered()],
            "waves": [[i.id for i in wave] for wave in self.waves],
            "bastion": self.bastion.id if self.bastion else None,
            "deferred": self.deferred(),
            "outputs": {o.name: {"value": MASK if o.sensitive and not is_deferred(o.value) else to_json(o.value),
                                 "deferred": is_deferred(o.value), "sensitive": o.sensitive,
                                 "description": o.description}
                        for o in m.outputs.values()},
            "policies": [{**pol.to_json(), "count": m.instance_count(pol.node)} for pol in m.elastic],
        }

    def _ordered(self) -> list[PlannedInstance]:
        return [self.instances[i] for wave in self.waves for i in wave]


def _masked(props: dict[str, Any]) -> dict[str, Any]:
    from dodas.model.build import SECRET_NAME
    return {k: (MASK if SECRET_NAME.search(k) and isinstance(v, str) and v else v) for k, v in props.items()}


def make_plan(model: DeploymentModel, smap: SourceMap | None = None) -> Plan:
    edges = graph.check_acyclic(model, smap)
    jump = graph.bastion(model, edges)
    deps = graph.instance_deps(model, edges, jump)
    waves = graph.waves(deps)
    wave_of = {i: n for n, wave in enumerate(waves) for i in wave}
    for wave in waves:
        wave.sort(key=lambda i: (i.node, i.index))
    instances = {i: PlannedInstance(i, model.nodes[i.node], deps[i], wave_of[i]) for i in deps}
    return Plan(model, instances, waves, jump)
