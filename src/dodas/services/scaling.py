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
from dodas.model.template import Template
from dodas.tosca.inputs import GivenInput


def _template(template: str | Template) -> Template:
    return template if isinstance(template, Template) else Template.read(template)


def scale_inputs(template: str | Template, node: str, count: int, deployment: str | None = None) -> dict[str, Any]:
    """The inputs that make `node` have `count` instances (given, over the kept ones).
    A count the template fixes that `deployment` keeps as the autoscaler's
    (model/managed.py) is set there, as the autoscaler sets it."""
    from dodas.model import managed

    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DodasError(f"a count is a whole number, 0 or more (got {count!r})")
    tpl = _template(template)
    found = tpl.scalable.get(node)
    if deployment is not None and (found is None or found.input is None) and node in tpl.raw_nodes:
        from dodas.state.store import Store

        dep = Store().get(deployment)
        if dep is not None and managed.key(node) in (dep.inputs or {}):
            return {managed.key(node): GivenInput(count, f"<dodas scale {node}>", 1, 1)}
    name = tpl.count_input(node)  # the model's rule, with its errors
    return {name: GivenInput(count, f"<dodas scale {node}>", 1, 1)}


def scalable_nodes(template: str | Template) -> dict[str, str]:
    """The nodes whose count an input sets, with that input (what `scale` can change)."""
    return _template(template).scalable_inputs()


def counts(template: str | Template, inputs: dict[str, Any]) -> dict[str, Any]:
    """The nodes `scale` can change, with their counts for a deployment whose
    inputs are `inputs` (a form's current values)."""
    tpl = _template(template)
    scalable = tpl.scalable_inputs()
    return {node: count for node, count in tpl.counts(inputs).items() if node in scalable}


def sent_counts(text: str, inputs: dict[str, Any]) -> dict[str, tuple[int, tuple[str, ...]]]:
    """What a template sent as text asks of each node that has a count (IM's
    `scalable.count`, as CLUES sends it): (count, removal_list). A count read
    from an input is the deployment's value of it (`inputs`), not the sent
    template's default: a template sent back unchanged changes nothing."""
    tpl = Template.parse(text, "template.yaml")
    if not tpl.raw_nodes:
        raise DodasError("the template has no topology_template.node_templates")
    out = {}
    for node, count in tpl.counts(inputs).items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise DodasError(f'node "{node}": scalable.count is not a whole number, 0 or more')
        out[node] = (count, tpl.scalable[node].removal_list)
    return out
