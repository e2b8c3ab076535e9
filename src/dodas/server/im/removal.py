"""Which VMs IM's callers may remove, as new counts of their nodes.

IM removes the VMs a caller names (`DELETE .../vms/1,2`, or a template's
`removal_list` beside a lower `scalable.count`, as CLUES sends it). dodas
changes a node by its count, and a lower count removes the node's last
instances (the highest indices): chosen removal is not supported yet. So a
removal is taken when the VMs named are exactly some nodes' last instances,
and refused otherwise with the VMs that could be named.
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


def counts_after(view: dict[str, Any], numbers: list[int], inf_id: str) -> dict[str, int]:
    """The nodes' counts once the VMs `numbers` are gone; 400 when they are not
    their nodes' last instances (or 404 for a VM that does not exist)."""
    nodes = _by_node(view)
    total = sum(len(v) for v in nodes.values())
    missing = sorted({n for n in numbers if n >= total})
    if missing:
        raise Refused(404, f'infrastructure "{inf_id}" has no VM {", ".join(map(str, missing))} '
                           f"(its VMs: {f'0 to {total - 1}' if total else 'none'})")
    out: dict[str, int] = {}
    for node, vms in nodes.items():
        named = {n for n in numbers if n in vms}
        if not named:
            continue
        last = vms[len(vms) - len(named):]
        if named != set(last):
            raise Refused(400, f'node "{node}": this server removes a node\'s last VMs, not chosen ones '
                               f"(chosen removal is not supported yet): to remove {len(named)} of its VMs, "
                               f"name {', '.join(map(str, last))}")
        out[node] = len(vms) - len(named)
    return out


def changed_counts(view: dict[str, Any], wanted: dict[str, tuple[int, tuple[str, ...]]],
                   inf_id: str) -> dict[str, int]:
    """The nodes whose count in a template sent (`wanted`: count and removal_list,
    ops.sent_counts) differs from the deployment's VMs now. A removal_list must
    name VMs of its node, as many as the count drops, and they must be the
    node's last ones."""
    nodes = _by_node(view)
    out: dict[str, int] = {}
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
            counts_after(view, numbers, inf_id)
        if count != len(have):
            out[str(node)] = count
    return out
