"""Answering `get_attribute` from what is recorded of a deployment's instances.

The one home of the rule (a compute's addresses and ids from its machine, an
instance's recorded attributes and secrets, else its node's property, else its
host's address; a node-wide reference gives every instance's value). The
engine's `RunContext` answers with it while it runs; `dodas outputs` answers
with it from the state alone, without the engine (services/outputsframe.py).
It needs of a machine its `provider_id` and addresses only, so it imports no
provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dodas.model.deployment import DeploymentModel, Instance
from dodas.model.values import AttrRef, evaluate

ADDRESS_ATTRS = {"public_address", "private_address", "ip_address"}


class UnresolvedError(Exception):
    pass


class RecordedAttributes:
    """Lookups over `model`, `machines` (compute instance -> anything with
    `provider_id`, `public_address`, `private_address`), `attributes` and
    `secrets` (instance -> dict), which the class that mixes it in holds."""

    model: DeploymentModel
    machines: dict[Instance, Any]
    attributes: dict[Instance, dict[str, Any]]
    secrets: dict[Instance, dict[str, Any]]

    def record_rows(self, rows: dict[tuple[str, int], Any], machine: Callable[[dict[str, Any]], Any]) -> None:
        """Take in what the state recorded (instance rows): a compute row with a
        provider id is a machine (`machine` makes it from the row's attributes),
        the others' attributes (without dodas's own `_` keys) and secrets are kept."""
        for (node, index), row in rows.items():
            inst = Instance(node, index)
            if row.kind == "compute" and row.attributes.get("provider_id"):
                self.machines[inst] = machine(row.attributes)
            else:
                self.attributes[inst] = {k: v for k, v in row.attributes.items() if not k.startswith("_")}
            if row.secrets:
                self.secrets[inst] = dict(row.secrets)

    def compute_of(self, inst: Instance) -> Instance | None:
        host = self.model.host_compute(inst.node)
        return Instance(host, inst.index) if host else None

    def machine_of(self, inst: Instance) -> Any:
        c = self.compute_of(inst)
        return self.machines.get(c) if c else None

    def _value(self, inst: Instance, attr: str) -> Any:
        node = self.model.nodes[inst.node]
        if node.is_compute:
            m = self.machines.get(inst)
            if m is None:
                raise UnresolvedError(f"{inst.id} does not exist yet")
            if attr in ("public_address", "ip_address"):
                return m.public_address or m.private_address
            if attr == "private_address":
                return m.private_address or m.public_address
            if attr in ("tosca_id", "provider_id"):
                return m.provider_id
        if attr == "tosca_name":
            return inst.node
        for source in (self.secrets.get(inst, {}), self.attributes.get(inst, {})):
            if attr in source:
                return source[attr]
        if attr in node.properties:
            return node.properties[attr]
        if attr in ADDRESS_ATTRS:
            host = self.compute_of(inst)
            if host is not None and host != inst:
                return self._value(host, attr)
        raise UnresolvedError(f'attribute "{attr}" of {inst.id} is not known yet')

    def lookup(self, ref: AttrRef, current: Instance | None) -> Any:
        path = list(ref.path)
        if ref.scope in ("self", "host") and current is not None:
            inst = Instance(ref.node, current.index)
            value = self._value(inst, ref.attribute)
            if path and isinstance(path[0], int) and not isinstance(value, list):
                path = path[1:]  # INDIGO writes [HOST, private_address, 0] for "the host's address"
        else:
            indexes = self.model.indexes(ref.node)
            count = len(indexes)
            values = [self._value(Instance(ref.node, i), ref.attribute) for i in indexes]
            if path and isinstance(path[0], int):
                value = values
            else:
                value = values[0] if count == 1 else values
        for p in path:
            try:
                value = value[p]
            except (IndexError, KeyError, TypeError):
                raise UnresolvedError(f"get_attribute {ref.node}.{ref.attribute}: nothing at {p!r}") from None
        return value

    def evaluate(self, value: Any, current: Instance | None) -> Any:
        return evaluate(value, lambda ref: self.lookup(ref, current))
