"""The dependency graph over node instances, and its waves.

An instance waits for its host instance, for every instance of each node it
depends on or connects to, and for every instance of each node whose attributes
it reads (an address has to exist before it can be passed on). Cycles are looked
for between nodes first, because a cycle is the user's to fix and reads best in
the names they wrote; the instance graph is then acyclic by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from dodas.errors import TemplateError
from dodas.model.deployment import IMPLICIT_AFTER, DeploymentModel, Instance, Node
from dodas.model.values import refs
from dodas.yamlsource import SourceMap


@dataclass(frozen=True)
class NodeEdge:
    source: str
    target: str
    why: str  # requirement name, or "get_attribute"


def node_edges(model: DeploymentModel) -> dict[str, list[NodeEdge]]:
    out: dict[str, list[NodeEdge]] = {name: [] for name in model.nodes}
    for node in model.nodes.values():
        seen: set[str] = set()
        for worker, front in IMPLICIT_AFTER.items():
            if node.derives_from(worker):
                for other in model.nodes.values():
                    if other.derives_from(front) and other.name not in seen:
                        seen.add(other.name)
                        out[node.name].append(NodeEdge(node.name, other.name, "front end"))
        for req in node.requirements:
            if req.target in model.nodes and req.target not in seen:
                seen.add(req.target)
                out[node.name].append(NodeEdge(node.name, req.target, req.name))
        for ref in _node_refs(model, node):
            if ref not in seen and ref != node.name and ref in model.nodes:
                seen.add(ref)
                out[node.name].append(NodeEdge(node.name, ref, "get_attribute"))
    return out


def _node_refs(model: DeploymentModel, node: Node) -> list[str]:
    """Nodes whose attributes `node` reads; a secret dodas generates before the walk
    (a Spark cluster's secret) exists from the start and orders nothing."""
    values = list(node.properties.values()) + [op.inputs for op in node.operations.values()]
    return [r.node for r in refs(values) if r.scope == "node" and not (
        r.node in model.nodes and r.attribute in model.nodes[r.node].generated_secrets())]


def find_cycle(edges: dict[str, list[NodeEdge]]) -> list[NodeEdge] | None:
    """One cycle as the edges that make it, or None. Iterative DFS: templates of
    thousands of nodes must not hit Python's recursion limit."""
    color: dict[str, int] = {}
    for start in edges:
        if color.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[NodeEdge] = []
        color[start] = 1
        while stack:
            name, i = stack[-1]
            out = edges.get(name, [])
            if i < len(out):
                stack[-1] = (name, i + 1)
                e = out[i]
                c = color.get(e.target, 0)
                if c == 1:
                    begin = next((k for k, p in enumerate(path) if p.source == e.target), len(path))
                    return [*path[begin:], e]
                if c == 0:
                    color[e.target] = 1
                    path.append(e)
                    stack.append((e.target, 0))
            else:
                color[name] = 2
                stack.pop()
                if path:
                    path.pop()
    return None


def check_acyclic(model: DeploymentModel, smap: SourceMap | None) -> dict[str, list[NodeEdge]]:
    edges = node_edges(model)
    cycle = find_cycle(edges)
    if cycle:
        names = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
        first = cycle[0]
        msg = f"dependency cycle: {names}"
        if smap is None:
            from dodas.errors import Diagnostic
            raise TemplateError([Diagnostic(model.template_path, 1, 1, msg)])
        base = ("topology_template", "node_templates", first.source)
        pos = smap.search([first.target], within=(*base, "requirements")) if first.why != "get_attribute" \
            else smap.search([first.target], within=base)
        from dodas.errors import Diagnostic
        line, col = pos or smap.position(base, key=True)
        raise TemplateError([Diagnostic(smap.file, line, col, msg)])
    return edges


def bastion(model: DeploymentModel, edges: dict[str, list[NodeEdge]]) -> Instance | None:
    """The machine dodas reaches the deployment's private machines through: the
    first instance of the first compute node (in template order) on the PUBLIC
    network, when some other compute is on a private one. It must depend on
    nothing, so that waiting for it can never close a cycle."""
    computes = [n for n in model.nodes.values() if n.compute is not None and model.instance_count(n.name) > 0]
    if not any(n.compute.network != "PUBLIC" for n in computes):  # type: ignore[union-attr]
        return None
    front = next((n for n in computes if n.compute.network == "PUBLIC" and not edges[n.name]),  # type: ignore[union-attr]
                 None)
    return Instance(front.name, model.indexes(front.name)[0]) if front else None


def instance_deps(model: DeploymentModel, edges: dict[str, list[NodeEdge]],
                  jump: Instance | None = None) -> dict[Instance, list[Instance]]:
    """Each instance's dependencies. With a bastion (`jump`), software on a private
    machine also waits for the bastion to exist: that is how dodas reaches it."""
    indexes = {name: model.indexes(name) for name in model.nodes}
    deps: dict[Instance, list[Instance]] = {}
    for name, node in model.nodes.items():
        for i in indexes[name]:
            inst = Instance(name, i)
            out: list[Instance] = []
            for e in edges[name]:
                if e.target == node.host:
                    out.append(Instance(e.target, i))
                else:
                    out.extend(Instance(e.target, k) for k in indexes[e.target])
            host = model.host_compute(name) if not node.is_compute else None
            if jump is not None and host is not None and host != jump.node and jump not in out \
                    and model.nodes[host].compute.network != "PUBLIC":  # type: ignore[union-attr]
                out.append(jump)
            deps[inst] = out
    return deps


def waves(deps: dict[Instance, list[Instance]]) -> list[list[Instance]]:
    """Kahn's algorithm by levels: a wave holds what can run once earlier waves are done."""
    level: dict[Instance, int] = {}
    indeg = {i: len(d) for i, d in deps.items()}
    users: dict[Instance, list[Instance]] = {i: [] for i in deps}
    for inst, ds in deps.items():
        for d in ds:
            users[d].append(inst)
    frontier = [i for i, n in indeg.items() if n == 0]
    for i in frontier:
        level[i] = 0
    head = 0
    while head < len(frontier):
        cur = frontier[head]
        head += 1
        for u in users[cur]:
            level[u] = max(level.get(u, 0), level[cur] + 1)
            indeg[u] -= 1
            if indeg[u] == 0:
                frontier.append(u)
    out: list[list[Instance]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for inst in deps:
        out[level[inst]].append(inst)
    return out
