"""`dodas scale NAME NODE COUNT`: a new instance count for one node, as the
input its template reads it from.

TOSCA writes a node's count as `capabilities.scalable.properties.count`; the
templates DODAS users write take it from an input (`number_of_workers`). Scaling
is then `up` with that input changed and everything else kept, so it is planned,
asked and applied exactly as `up` is. A count written as a constant cannot be
changed without editing the template, and that is what the message says.
"""

from __future__ import annotations

from typing import Any

from dodas.errors import DodasError
from dodas.tosca.inputs import GivenInput


def count_input(template: str, node: str) -> str:
    """The input that sets `node`'s instance count in the template file."""
    from dodas.tosca.source import load_yaml, read_source

    data, _ = load_yaml(read_source(template, "template"), template)
    nodes = ((data or {}).get("topology_template") or {}).get("node_templates") or {}
    if node not in nodes:
        known = ", ".join(sorted(nodes)) or "none"
        raise DodasError(f'the deployment has no node "{node}" (its nodes: {known})')
    count = ((((nodes[node] or {}).get("capabilities") or {}).get("scalable") or {}).get("properties") or {}) \
        .get("count")
    if isinstance(count, dict) and isinstance(count.get("get_input"), str):
        return count["get_input"]
    if count is None:
        raise DodasError(f'node "{node}" has no scalable count (capabilities.scalable.properties.count): it is '
                         "not a node that scales")
    raise DodasError(f'node "{node}" has a fixed count ({count!r}), not an input: change it in the template and '
                     "run up")


def scale_inputs(template: str, node: str, count: int) -> dict[str, Any]:
    """The inputs that make `node` have `count` instances (given, over the kept ones)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DodasError(f"a count is a whole number, 0 or more (got {count!r})")
    name = count_input(template, node)
    return {name: GivenInput(count, f"<dodas scale {node}>", 1, 1)}


def scalable_nodes(template: str) -> dict[str, str]:
    """The nodes whose count an input sets, with that input (what `scale` can change)."""
    from dodas.tosca.source import load_yaml, read_source

    data, _ = load_yaml(read_source(template, "template"), template)
    nodes = ((data or {}).get("topology_template") or {}).get("node_templates") or {}
    out = {}
    for node in nodes:
        try:
            out[node] = count_input(template, node)
        except DodasError:
            continue
    return out
