"""The deployment's dependency graph as an SVG picture, drawn on the server.

Nodes are laid out in columns by depth (a node stands right of everything it
needs: machines on the left, what runs on them to the right), edges go from a
node to what it needs. Each node is a `<g class="node state-S">` whose state
class the page's script changes as Server-Sent Events arrive, so the picture
follows the deployment without a reload; without a script it shows the states
of the moment it was drawn. No library: a few dozen nodes need no more.
"""

from __future__ import annotations

from html import escape
from typing import Any

from dodas.server.web import textwidth

BOX_W, BOX_H, COL_GAP, ROW_GAP, PAD = 200, 66, 64, 18, 12
#: the text's size and left margin in a box (dashboard.css: svg.graph); a line wider than the room
#: left (the same margin on the right) is cut, whole in the node's tooltip
TEXT_PX, TEXT_X = 13, 10
ROOM = BOX_W - 2 * TEXT_X

#: the order in which one instance's state colours its whole node: trouble first, then work under way
_RANK = ["error", "missing", "deleting", "creating", "configuring", "initial", "deleted", "created", "started",
         "configured"]


def node_state(states: list[str]) -> str:
    """One state for a node from its instances' states (the most telling one)."""
    if not states:
        return "pending"
    return min(states, key=lambda s: _RANK.index(s) if s in _RANK else len(_RANK))


def node_states(instances: list[dict[str, Any]]) -> dict[str, str]:
    by_node: dict[str, list[str]] = {}
    for i in instances:
        by_node.setdefault(i["node"], []).append(str(i.get("state")))
    return {n: node_state(s) for n, s in by_node.items()}


def shape(instances: list[dict[str, Any]]) -> str:
    """What the picture depends on besides the states: the instances per node. A
    page redraws the picture (fetching it again) when this changes."""
    counts: dict[str, int] = {}
    for i in instances:
        counts[i["node"]] = counts.get(i["node"], 0) + 1
    return ",".join(f"{n}:{c}" for n, c in sorted(counts.items()))


def _columns(nodes: list[str], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    needs: dict[str, set[str]] = {n: set() for n in nodes}
    for src, dst, _ in edges:
        if src in needs and dst in needs and src != dst:
            needs[src].add(dst)
    column: dict[str, int] = {}

    def depth(n: str, seen: frozenset[str]) -> int:
        if n not in column:
            column[n] = 1 + max((depth(d, seen | {n}) for d in needs[n] if d not in seen), default=-1)
        return column[n]
    for n in nodes:
        depth(n, frozenset())
    return column


def _fit(text: str, bold: bool = False) -> str:
    return textwidth.fit(text, TEXT_PX, ROOM, bold)


def ready_label(done: int, total: int) -> str:
    """A node's "2 of 3 ready", shorter ("12/12 ready", "12/12") when it would not
    fit after the longest state a node shows ("configuring · "): the page's script
    puts it after whichever state comes, without measuring."""
    longest = max(_RANK + ["pending"], key=lambda st: textwidth.width(st, TEXT_PX))
    for label in (f"{done} of {total} ready", f"{done}/{total} ready", f"{done}/{total}"):
        if textwidth.width(f"{longest} · {label}", TEXT_PX) <= ROOM:
            return label
    return f"{done}/{total}"


def svg(topology: dict[str, Any], states: dict[str, str], labels: dict[str, str] | None = None) -> str:
    """The picture (an inline `<svg>` element with a title and a text description);
    `labels` adds a third line to a node ("2 of 3 ready")."""
    labels = labels or {}
    nodes = [n["name"] for n in topology["nodes"]]
    info = {n["name"]: n for n in topology["nodes"]}
    edges = [tuple(e) for e in topology["edges"]]
    column = _columns(nodes, edges)
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(column[n], []).append(n)
    at = {n: (PAD + c * (BOX_W + COL_GAP), PAD + r * (BOX_H + ROW_GAP))
          for c, members in rows.items() for r, n in enumerate(members)}
    width = PAD * 2 + (max(rows, default=0) + 1) * (BOX_W + COL_GAP) - COL_GAP
    height = PAD * 2 + max((len(m) for m in rows.values()), default=1) * (BOX_H + ROW_GAP) - ROW_GAP
    described = "; ".join(f"{n} needs {', '.join(sorted({d for s, d, _ in edges if s == n}))}"
                          for n in nodes if any(s == n for s, _, _ in edges))
    out = [f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-labelledby="graph-title graph-desc" xmlns="http://www.w3.org/2000/svg">',
           '<title id="graph-title">The deployment\'s nodes and what each needs</title>',
           f'<desc id="graph-desc">{escape(described or "no dependencies")}</desc>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>']
    for src, dst, why in edges:
        if src not in at or dst not in at:
            continue
        (sx, sy), (dx, dy) = at[src], at[dst]
        x1, y1, x2, y2 = sx, sy + BOX_H / 2, dx + BOX_W, dy + BOX_H / 2
        mid = (x1 + x2) / 2
        out.append(f'<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" marker-end="url(#arrow)">'
                   f'<title>{escape(src)} needs {escape(dst)} ({escape(why)})</title></path>')
    for n in nodes:
        x, y = at[n]
        state = states.get(n, "pending")
        kind = str(info[n].get("type", "")).rsplit(".", 1)[-1]
        count = info[n].get("instances", 1)
        out.append(f'<g class="node state-{escape(state)}" data-node="{escape(n)}" transform="translate({x},{y})">'
                   f'<title>{escape(n)}: {count}× {escape(kind)}</title>'
                   f'<rect width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                   f'<text x="{TEXT_X}" y="20" class="node-name">{escape(_fit(n, bold=True))}</text>'
                   f'<text x="{TEXT_X}" y="38" class="node-kind">{escape(_fit(f"{count}× {kind}"))}</text>'
                   f'<text x="{TEXT_X}" y="56" class="node-kind"><tspan class="node-state">{escape(state)}</tspan>'
                   f'<tspan class="node-ready">{escape(" · " + labels[n] if n in labels else "")}</tspan>'
                   '</text></g>')
    out.append("</svg>")
    return "".join(out)
