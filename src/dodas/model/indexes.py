"""Instances removed by name: which indexes a scalable node has left.

A node's count says how many instances it has; they are `node[0]` to
`node[count-1]` until one is removed by name (`dodas up --remove
'worker_hosts[1]'`, IM's `removal_list`, the autoscaler taking an idle worker
that is not the last). Then the others keep their indexes, and with them their
machines and addresses: the deployment's inputs hold the indexes left, under a
name no template declares (`key(node)`), as they hold the counts the
autoscaler manages (model/managed.py).

The count stays the one number that says how many: `reconcile` makes the kept
indexes agree with it. A larger count (scale, the autoscaler adding) fills the
lowest free indexes first; a smaller one without names drops the highest, as a
count always did. When the indexes are 0..count-1 again nothing is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dodas.errors import Diagnostic
from dodas.model.deployment import Node

PREFIX = "dodas:indexes:"


def key(node: str) -> str:
    """The name under which the deployment's inputs hold `node`'s indexes."""
    return PREFIX + node


def is_key(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def split(given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(everything else, the kept indexes) of what an operation was given."""
    return ({k: v for k, v in given.items() if not is_key(k)}, {k: v for k, v in given.items() if is_key(k)})


def reconcile(indexes: Iterable[int], count: int) -> tuple[int, ...]:
    """`count` indexes, as close to `indexes` as the count allows: kept in order,
    the highest dropped when there are too many, the lowest free ones added when
    there are too few."""
    out = sorted(set(indexes))
    if len(out) > count:
        out = out[:count]
    free = (i for i in range(count + len(out) + 1) if i not in set(out))
    while len(out) < count:
        out.append(next(free))
    return tuple(sorted(out))


def apply(nodes: dict[str, Node], given: dict[str, Any], file: str) -> tuple[dict[str, list[int]], list[Diagnostic]]:
    """Set each compute's indexes from the value kept for it, reconciled with its
    count; return what is to be kept with the deployment's inputs (only indexes
    that are not 0..count-1) and the problems of a kept value."""
    kept: dict[str, list[int]] = {}
    diags: list[Diagnostic] = []
    for name, g in given.items():
        node = nodes.get(name[len(PREFIX):])
        value = getattr(g, "value", g)
        if node is None or node.compute is None:
            continue  # a node no longer in the template (or no longer a machine): its instances go
        if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                  for i in value):
            where = (g.file, g.line, g.col) if hasattr(g, "file") else (file, 1, 1)
            diags.append(Diagnostic(*where, f'node "{node.name}": the instance indexes kept for it must be a list '
                                    f"of whole numbers, 0 or more, got {value!r}"))
            continue
        indexes = reconcile(value, node.count)
        if indexes != tuple(range(node.count)):
            node.indexes = indexes
            kept[name] = list(indexes)
    return kept, diags
