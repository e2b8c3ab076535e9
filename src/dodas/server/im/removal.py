"""Which VMs IM's callers remove: the instances they name.

IM removes the VMs a caller names (`DELETE .../vms/1,2`, or a template's
`removal_list` beside a lower `scalable.count`, as CLUES sends it). dodas
removes exactly those instances (services/removal.py): the node's other
instances keep their indexes and machines. A VM's number is its position in the
deployment's machines (states.machines), so the VMs listed after a removed one
are numbered one lower afterwards; IM's own numbers never move (a known
difference: read the infrastructure again after a removal).
"""

from __future__ import annotations

from typing import Any

from dodas.server.access import Refused
from dodas.server.im import states


def _by_node(view: dict[str, Any]) -> dict[str, list[int]]:
    """Each node's VM numbers, in index order (IM's numbers: positions in states.machines)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for n, m in enumerate(states.machines(view)):
        out.setdefault(str(m["node"]), []).append((int(m.get("index", n)), n))
    return {node: [n for _, n in sorted(pairs)] for node, pairs in out.items()}


def chosen(view: dict[str, Any], numbers: list[int], inf_id: str) -> list[str]:
    """The instances ("worker_hosts[3]") of the VMs `numbers` (404 for a VM that
    does not exist): any of a node's VMs may be named, the others keep theirs."""
    machines = states.machines(view)
    missing = sorted({n for n in numbers if n >= len(machines)})
    if missing:
        raise Refused(404, f'infrastructure "{inf_id}" has no VM {", ".join(map(str, missing))} '
                           f"(its VMs: {f'0 to {len(machines) - 1}' if machines else 'none'})")
    return [str(machines[n]["id"]) for n in sorted(set(numbers))]


def changed(view: dict[str, Any], wanted: dict[str, tuple[int, tuple[str, ...]]],
            inf_id: str) -> tuple[dict[str, int], list[str]]:
    """What a template sent (`wanted`: count and removal_list, ops.sent_counts)
    changes: the new counts of nodes without a removal_list, and the instances a
    removal_list names. A removal_list must name VMs of its node, as many as the
    count drops."""
    nodes = _by_node(view)
    counts: dict[str, int] = {}
    removed: list[str] = []
    for node, (count, removal) in wanted.items():
        have = nodes.get(str(node), [])
        if removal:
            numbers = []
            for r in removal:
                if not str(r).isdigit() or int(r) not in have:
                    raise Refused(400, f'node "{node}": removal_list names {str(r)[:40]}, which is not one of '
                                       f"its VMs ({', '.join(map(str, have)) or 'none'})")
                numbers.append(int(r))
            if len(set(numbers)) != len(have) - count:
                raise Refused(400, f'node "{node}": removal_list names {len(set(numbers))} VMs but the count '
                                   f"goes from {len(have)} to {count}")
            removed += chosen(view, numbers, inf_id)
        elif count != len(have):
            counts[str(node)] = count
    return counts, removed
