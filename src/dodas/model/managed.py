"""Counts the autoscaler manages: an elastic node whose template count is fixed.

INDIGO's elastic templates write the workers' count as a constant (often 0) and
let CLUES power nodes on and off without the template changing. dodas does the
same: when an elasticity policy (model/elastic.py) is over a node whose count
is no input, that count is the deployment's own value, held in its inputs
under a name no template declares (`key(node)`). The first `up` starts it at
the template's count; the autoscaler changes it as it changes an input (a plan
given that value); a later `up` of the same template keeps it, as it keeps any
earlier input (services/planning.py), instead of going back to the constant.
"""

from __future__ import annotations

from typing import Any

from dodas.errors import Diagnostic
from dodas.model.deployment import MANAGED_COUNT_PREFIX as PREFIX
from dodas.model.deployment import Node, Policy


def key(node: str) -> str:
    """The name under which the deployment's inputs hold `node`'s managed count."""
    return PREFIX + node


def is_key(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def split(given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the template's inputs, the managed counts) of what an operation was given."""
    return ({k: v for k, v in given.items() if not is_key(k)}, {k: v for k, v in given.items() if is_key(k)})


def apply(policies: tuple[Policy, ...] | list[Policy], nodes: dict[str, Node], given: dict[str, Any],
          max_per_node: int, file: str) -> tuple[dict[str, int], list[Diagnostic]]:
    """Set each managed node's count to the value given for it (kept from the
    deployment, or the autoscaler's), else leave the template's; return the
    counts, to be kept with the deployment's inputs, and the problems of a given
    value (located where it came from). A value for a node no policy manages any
    more is dropped: the template's count is the node's again."""
    counts: dict[str, int] = {}
    diags: list[Diagnostic] = []
    for p in policies:
        if not is_key(p.count_input) or p.node not in nodes:
            continue
        g = given.get(p.count_input)
        value = getattr(g, "value", g)
        if g is not None:
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= max_per_node:
                nodes[p.node].count = value
            else:
                where = (g.file, g.line, g.col) if hasattr(g, "file") else (file, 1, 1)
                diags.append(Diagnostic(*where, f'node "{p.node}": the count the autoscaler manages must be a whole '
                                        f"number from 0 to {max_per_node}, got {value!r}"))
        counts[p.count_input] = nodes[p.node].count
    return counts, diags
