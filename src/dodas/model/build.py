"""From a validated TOSCA template to the deployment model.

tosca-parser supplies the type hierarchy and property defaults; values come from
the raw template so that functions are seen as the user wrote them and resolved
here with dodas's own rules (see functions.py). Checks tosca-parser does not make
are made here, each placed in the YAML: requirement targets of the wrong type,
references to undeclared attributes, compute sizes unknown at plan time.

Elasticity policies are read here too (model/elastic.py), so that a bad bound
is reported with the template's other problems and the plan carries the policy.

Two of them keep a template from doing harm on the machine dodas runs on:
instance counts are bounded (the operator's limits, `dodas.settings`) before the
planner expands anything, and a playbook outside dodas's own and the template's
directory is refused unless the caller allows external playbooks.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dodas import settings
from dodas.errors import Diagnostic, TemplateError
from dodas.model.deployment import (COMPUTE_TYPE, ComputeSpec, DeploymentModel, Node, Operation,
                                    Output, Port, Requirement)
from dodas.model import checks, hostneeds, indexes, managed, playbooks, xrootd
from dodas.model.elastic import parse as parse_elastic
from dodas.model.functions import FunctionError, Resolver
from dodas.model.template import COUNT_KEYS, Template, type_chain
from dodas.model.values import DEFERRED_TYPES, refs
from dodas.settings import Limits
from dodas.tosca.inputs import SECRET_NAME
from dodas.tosca.loader import LoadedTemplate

__all__ = ["SECRET_NAME", "build"]
#: attributes every node has at run time, whatever its type declares
RUNTIME_ATTRIBUTES = {"tosca_id", "tosca_name", "state", "public_address", "private_address", "ip_address"}
_NODES = ("topology_template", "node_templates")


class _Builder:
    def __init__(self, loaded: LoadedTemplate, *, allow_external_playbooks: bool = False) -> None:
        self.loaded = loaded
        #: what plan and up refuse for safety and validate only reports (an external playbook)
        self.unsafe: list[Diagnostic] = []
        self.smap = loaded.smap
        self.allow_external_playbooks = allow_external_playbooks
        self.limits = settings.limits()
        self.facts = Template.of(loaded)  # what is asked of the YAML as written (model/template.py)
        self.diags: list[Diagnostic] = []
        topo = loaded.data.get("topology_template") or {}
        self.raw_nodes: dict[str, dict[str, Any]] = topo.get("node_templates") or {}
        self.raw_outputs: dict[str, Any] = topo.get("outputs") or {}
        self.templates = {nt.name: nt for nt in (getattr(loaded.tosca, "nodetemplates", None) or [])}
        self.chains = {name: type_chain(nt.type_definition) for name, nt in self.templates.items()}
        self._props: dict[tuple[str, str | None], dict[str, Any] | None] = {}
        self._caps: dict[str, dict[str, Any]] = {}
        self.requirements = {name: self._requirements(name) for name in self.templates}
        self.hosts = {name: next((r.target for r in reqs if r.relationship == "HostedOn"), None)
                      for name, reqs in self.requirements.items()}
        self.resolver = Resolver(loaded.inputs, set(self.templates), self._prop_source, self.hosts.get)

    # -- raw values with defaults ---------------------------------------------
    def _prop_source(self, node: str, cap: str | None) -> dict[str, Any] | None:
        key = (node, cap)
        if key not in self._props:
            self._props[key] = self._compute_props(node, cap)
        return self._props[key]

    def _compute_props(self, node: str, cap: str | None) -> dict[str, Any] | None:
        nt = self.templates.get(node)
        if nt is None:
            return None
        raw = self.raw_nodes.get(node) or {}
        if cap is None:
            defaults = {p.name: p.value for p in nt.get_properties_objects()}
            given = raw.get("properties") or {}
        else:
            caps = self._capabilities(node)
            if cap not in caps:
                return None
            defaults = {p.name: p.value for p in caps[cap].get_properties_objects()}
            given = ((raw.get("capabilities") or {}).get(cap) or {}).get("properties") or {}
        out = {k: v for k, v in defaults.items() if not _is_parser_function(v)}
        out.update(given)
        return out

    def _capabilities(self, node: str) -> dict[str, Any]:
        """tosca-parser's capabilities of a node template, made once: it builds them
        afresh (with every parent type's definitions) on each call, which was a
        third of a large template's model building."""
        if node not in self._caps:
            self._caps[node] = self.templates[node].get_capabilities()
        return self._caps[node]

    def _resolve(self, value: Any, node: str, where: tuple) -> Any:
        try:
            return self.resolver.resolve(value, node)
        except FunctionError as exc:
            self.diags.append(self.smap.diag(where, str(exc)))
            return None

    # -- requirements -----------------------------------------------------------
    def _requirements(self, name: str) -> list[Requirement]:
        defs = _requirement_defs(self.templates[name].type_definition)
        out = []
        for i, entry in enumerate((self.raw_nodes.get(name) or {}).get("requirements") or []):
            (rname, spec), = entry.items()
            target = spec if isinstance(spec, str) else spec.get("node")
            rel = spec.get("relationship") if isinstance(spec, dict) else None
            if isinstance(rel, dict):
                rel = rel.get("type")
            rel = rel or (defs.get(rname) or {}).get("relationship") or (
                "tosca.relationships.HostedOn" if rname == "host" else "tosca.relationships.DependsOn")
            if not isinstance(target, str):
                continue  # a requirement by capability only: nothing to order on
            out.append(Requirement(rname, target, str(rel).rsplit(".", 1)[-1]))
            self._check_target(name, i, rname, target, defs.get(rname) or {})
        return out

    def _check_target(self, name: str, i: int, rname: str, target: str, rdef: dict) -> None:
        where = (*_NODES, name, "requirements", i, rname)
        if target not in self.templates:
            return  # tosca-parser reports missing targets
        if target == name:
            self.diags.append(self.smap.diag(where, f'node "{name}": requirement "{rname}" points at itself'))
            return
        want = rdef.get("node")
        if isinstance(want, str) and want not in self.chains[target] and want in _known_node_types(self):
            self.diags.append(self.smap.diag(
                where, f'node "{name}": requirement "{rname}" needs a {want}, but "{target}" is a '
                       f"{self.templates[target].type}"))

    # -- nodes ------------------------------------------------------------------
    def node(self, name: str) -> Node:
        nt = self.templates[name]
        chain = self.chains[name]
        base = (*_NODES, name)
        props = {k: self._resolve(v, name, (*base, "properties", k))
                 for k, v in (self._prop_source(name, None) or {}).items()}
        compute, count = None, 1
        if COMPUTE_TYPE in chain:
            compute, count = self._compute(name, base)
        return Node(name=name, type=nt.type, type_chain=chain, properties=props,
                    requirements=self.requirements[name], operations=self._operations(name, base),
                    count=count, compute=compute, host=self.hosts[name])

    def _cap(self, name: str, cap: str, base: tuple) -> dict[str, Any]:
        raw = self._prop_source(name, cap) or {}
        return {k: self._resolve(v, name, (*base, "capabilities", cap, "properties", k)) for k, v in raw.items()}

    def _compute(self, name: str, base: tuple) -> tuple[ComputeSpec, int]:
        host, os_, ep, sc = (self._cap(name, c, base) for c in ("host", "os", "endpoint", "scalable"))
        for cap, values in (("host", host), ("os", os_), ("endpoint", ep), ("scalable", sc)):
            for k, v in values.items():
                if isinstance(v, DEFERRED_TYPES):
                    self.diags.append(self.smap.diag((*base, "capabilities", cap, "properties", k),
                                                     f'node "{name}": {cap}.{k} must be known before the machine '
                                                     "exists; get_attribute cannot be used here"))
                    values[k] = None
        key = next((k for k in COUNT_KEYS if k in sc), "count")
        count = sc.get(key, 1)
        where = (*base, "capabilities", "scalable", "properties", key)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self.diags.append(self.smap.diag(where, f'node "{name}": count must be a whole number >= 0, '
                                                    f"got {_short(count)}"))
            count = 0
        elif count > self.limits.max_instances_per_node:
            self.diags.append(self.smap.diag(
                where, f'node "{name}": count {_number(count)}{self._from_input(name, key)} is more than the limit '
                       f"of {self.limits.max_instances_per_node} instances per node "
                       f"({Limits.where('max_instances_per_node')})"))
            count = 0  # reported: nothing is planned from it
        ports = []
        for pname, p in (ep.get("ports") or {}).items():
            if isinstance(p, dict):
                from dodas.model.network import ANYWHERE, cidr
                remote = cidr(p.get("remote_cidr", ANYWHERE))
                if remote is None:
                    self.diags.append(self.smap.diag(
                        (*base, "capabilities", "endpoint", "properties", "ports", pname, "remote_cidr"),
                        f'node "{name}": port "{pname}": remote_cidr must be an address range such as '
                        f"10.0.0.0/8, got {_short(p.get('remote_cidr'))}"))
                    continue
                ports.append(Port(str(pname), str(p.get("protocol", "tcp")), _int(p.get("source")),
                                  _int(p.get("target")), remote))
        spec = ComputeSpec(
            num_cpus=_int(host.get("num_cpus")), mem_mib=_mib(host.get("mem_size")),
            disk_mib=_mib(host.get("disk_size")), instance_type=host.get("instance_type"),
            image=os_.get("image"), network=str(ep.get("network_name") or "PRIVATE").upper(),
            ports=tuple(ports), num_gpus=_int(host.get("num_gpus")))
        return spec, count

    def _from_input(self, name: str, key: str) -> str:
        """' (from input "x")' when a count is the template's `get_input: x`."""
        found = self.facts.scalable.get(name)
        return f' (from input "{found.input}")' if found is not None and found.key == key and found.input else ""

    def check_instances(self, nodes: dict[str, Node]) -> None:
        """The whole deployment's instances (a compute's count, one per host instance
        for what it hosts) against the operator's limit, before any is expanded."""
        counts = _instance_counts(nodes)
        total = sum(counts.values())
        limit = self.limits.max_instances
        if total <= limit:
            return
        computes = sorted((n for n in nodes.values() if n.is_compute), key=lambda n: (-n.count, n.name))
        biggest = computes[0].name if computes else None
        parts = [f'node "{n.name}" {n.count}{self._from_input(n.name, self._count_key(n.name))}'
                 for n in computes[:3] if n.count > 1]
        msg = (f"the deployment would have {total} instances, more than the limit of {limit} "
               f"({Limits.where('max_instances')})" + (f"; the largest counts: {', '.join(parts)}" if parts else ""))
        where = (*_NODES, biggest, "capabilities", "scalable", "properties", self._count_key(biggest)) \
            if biggest is not None else _NODES
        self.diags.append(self.smap.diag(where, msg))

    def _count_key(self, name: str) -> str:
        found = self.facts.scalable.get(name)
        return found.key if found is not None else "count"

    def _operations(self, name: str, base: tuple) -> dict[str, Operation]:
        merged: dict[str, dict[str, Any]] = {}
        for tname, tdef in reversed(_chain_named(self.templates[name].type_definition)):
            for iname, ops in ((tdef.get("interfaces") or {}).items()):
                _merge_ops(merged, iname, ops, ("type", tname, iname))
        for iname, ops in ((self.raw_nodes.get(name) or {}).get("interfaces") or {}).items():
            _merge_ops(merged, iname, ops, ("node", name, iname))
        out: dict[str, Operation] = {}
        for iname, ops in merged.items():
            short = "Standard" if iname in ("Standard", "tosca.interfaces.node.lifecycle.Standard") else iname
            for op, spec in ops.items():
                impl = spec.get("implementation")
                if isinstance(impl, dict):
                    impl = impl.get("primary")
                inputs = {k: self._resolve(v, name, (*base, "interfaces", iname, op, "inputs", k))
                          for k, v in (spec.get("inputs") or {}).items()}
                key = op if short == "Standard" else f"{short}.{op}"
                playbook, problem = playbooks.resolve(impl, self.loaded.path, self.allow_external_playbooks)
                if problem is not None:  # the flag allows it: refused for safety (see `build`), not wrong
                    (self.unsafe if "--allow-external-playbooks" in problem else self.diags).append(
                        self._playbook_diag(name, op, spec.get("origin"), problem))
                out[key] = Operation(short, op, playbook, inputs)
        return out

    def _playbook_diag(self, name: str, op: str, origin: Any, problem: str) -> Diagnostic:
        """Placed where the implementation is written: the node's interfaces, the
        template's own type, or (a type from an imported file) the node's type."""
        kind, owner, iname = origin if isinstance(origin, tuple) else ("node", name, "Standard")
        if kind == "node":
            return self.smap.diag((*_NODES, name, "interfaces", iname, op, "implementation"),
                                  f'node "{name}" operation "{op}": {problem}')
        own_types = self.loaded.data.get("node_types")
        if isinstance(own_types, dict) and owner in own_types:
            return self.smap.diag(("node_types", owner, "interfaces", iname, op, "implementation"),
                                  f'type "{owner}" operation "{op}": {problem}')
        return self.smap.diag((*_NODES, name, "type"),
                              f'node "{name}": operation "{op}" of its type "{owner}": {problem}')

    # -- checks over the whole model ---------------------------------------------
    def check_refs(self, nodes: dict[str, Node], outputs: dict[str, Output]) -> None:
        def check(value: Any, where: tuple, owner: str) -> None:
            for ref in refs(value):
                target = nodes.get(ref.node)
                if target is None:
                    continue
                declared = _attributes(self.templates[ref.node].type_definition)
                caps = set(self._capabilities(ref.node))
                if ref.attribute not in declared | RUNTIME_ATTRIBUTES | caps:
                    known = ", ".join(sorted(declared | RUNTIME_ATTRIBUTES))
                    self.diags.append(self.smap.diag(
                        where, f'{owner}: node "{ref.node}" has no attribute "{ref.attribute}" '
                               f"(it has: {known})"))
        for n in nodes.values():
            for k, v in n.properties.items():
                check(v, (*_NODES, n.name, "properties", k), f'node "{n.name}"')
            for op in n.operations.values():
                for k, v in op.inputs.items():
                    check(v, (*_NODES, n.name, "interfaces", op.interface, op.name, "inputs", k),
                          f'node "{n.name}" operation {op.name}')
        for o in outputs.values():
            check(o.value, ("topology_template", "outputs", o.name, "value"), f'output "{o.name}"')

    def outputs(self) -> dict[str, Output]:
        out = {}
        for name, body in self.raw_outputs.items():
            value = self._resolve(body.get("value"), "", ("topology_template", "outputs", name, "value"))
            sensitive = bool(SECRET_NAME.search(name)) or any(SECRET_NAME.search(r.attribute) for r in refs(value))
            out[name] = Output(name, value, str(body.get("description") or ""), sensitive)
        return out


def build(loaded: LoadedTemplate, *, allow_external_playbooks: bool = False,
          report_unsafe: bool = False, managed_counts: dict[str, Any] | None = None) -> DeploymentModel:
    """The model of a loaded template; TemplateError with every problem found.

    What plan and up refuse for safety, not because the template is wrong (a
    playbook outside dodas's and the template's directory, a well-known Helm
    repository the template does not declare), is an error, or with
    `report_unsafe` (validate) a warning naming the flag or declaration needed.
    `managed_counts` are the counts the autoscaler manages (model/managed.py), by
    their input name, as the deployment keeps them, and the indexes left of nodes
    whose instances were removed by name (model/indexes.py).

    `allow_external_playbooks` lets operations name playbooks outside dodas's own
    and the template's directory (or URLs). It is the caller's decision, per
    call: a service that runs templates for others (a server) must always pass
    False, whatever its client asks."""
    b = _Builder(loaded, allow_external_playbooks=allow_external_playbooks)
    nodes = {name: b.node(name) for name in b.templates}
    b.check_instances(nodes)
    outputs = b.outputs()
    b.check_refs(nodes, outputs)
    checks.front_ends(b.smap, nodes, b.diags)
    checks.helm_releases(b.smap, nodes, b.diags, b.unsafe)
    elastic = parse_elastic(b.facts, loaded.tosca, nodes, b._resolve,
                            b.limits.max_instances_per_node, Limits.where("max_instances_per_node"))
    b.diags.extend(elastic.errors)
    kept_given, counts_given = indexes.split(managed_counts or {})
    kept_counts, count_diags = managed.apply(elastic.policies, nodes, kept_given,
                                             b.limits.max_instances_per_node, b.smap.file)
    b.diags.extend(count_diags)
    kept_indexes, index_diags = indexes.apply(nodes, counts_given, b.smap.file)
    b.diags.extend(index_diags)
    checks.htcondor_pools(b.smap, nodes, elastic.policies, b.diags)
    xrootd.caches(b.smap, nodes, b.diags)
    hostneeds.declare(b.smap, loaded.data, {name: _chain_named(t.type_definition) for name, t in b.templates.items()},
                      nodes, b.diags)
    unsafe = [checks.only_reported(d) for d in b.unsafe] if report_unsafe else []
    if not report_unsafe:
        b.diags.extend(b.unsafe)
    if b.diags:
        raise TemplateError(b.diags)
    warnings = [*b.smap.warnings, *loaded.warnings, *unsafe, *checks.kubernetes_warnings(b.smap, nodes),
                *elastic.warnings]
    data = loaded.data
    return DeploymentModel(
        template_path=loaded.path,
        template_sha256=hashlib.sha256(loaded.text.encode()).hexdigest(),
        tosca_version=str(data.get("tosca_definitions_version")),
        inputs={**loaded.inputs, **kept_counts, **kept_indexes}, nodes=nodes, outputs=outputs,
        description=str(data.get("description") or "").strip(),
        secret_inputs=frozenset(k for k in loaded.inputs if SECRET_NAME.search(k) or k in loaded.secret_inputs),
        placement=_placement(loaded), warnings=warnings,
        elastic=tuple(elastic.policies), elastic_clusters=frozenset(elastic.clusters))


def _placement(loaded: LoadedTemplate) -> tuple[str, ...]:
    out: list[str] = []
    for entry in ((loaded.data.get("topology_template") or {}).get("policies") or []):
        if not isinstance(entry, dict):
            continue
        for body in entry.values():
            if isinstance(body, dict) and "Placement" in str(body.get("type", "")):
                props = body.get("properties") or {}
                for key in ("cloud_id", "sla_id"):
                    if isinstance(props.get(key), str) and props[key]:
                        out.append(props[key])
    return tuple(out)


# -- helpers ---------------------------------------------------------------------
def _is_parser_function(v: Any) -> bool:
    from toscaparser.functions import Function
    return isinstance(v, Function)


def _chain_defs(tdef: Any) -> list[dict[str, Any]]:
    return [defs for _name, defs in _chain_named(tdef)]


def _chain_named(tdef: Any) -> list[tuple[str, dict[str, Any]]]:
    """(type name, its definition) from the type up to its root."""
    out, cur = [], tdef
    while cur is not None:
        out.append((cur.type, getattr(cur, "defs", None) or {}))
        cur = cur.parent_type
    return out


def _instance_counts(nodes: dict[str, Node]) -> dict[str, int]:
    """Instances of each node: a compute's count, its host's for the rest. Host
    chains are followed iteratively and a cycle stops the walk (the planner
    reports cycles, by name)."""
    out: dict[str, int] = {}
    for name in nodes:
        cur, seen = name, set()
        while nodes[cur].host in nodes and cur not in seen:
            seen.add(cur)
            cur = nodes[cur].host  # type: ignore[assignment]
        out[name] = nodes[cur].count
    return out


def _number(n: int) -> str:
    """A count for a message: one of a hundred digits is not read digit by digit."""
    text = str(n)
    return text if len(text) <= 24 else f"{text[:6]}...({len(text)} digits)"


def _short(value: Any) -> str:
    """A value for a message, cut short: a count may be anything a user typed."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _requirement_defs(tdef: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for defs in _chain_defs(tdef):  # most specific first: first one wins
        for entry in defs.get("requirements") or []:
            for rname, rdef in entry.items():
                if rname not in out and isinstance(rdef, dict):
                    out[rname] = rdef
    return out


def _attributes(tdef: Any) -> set[str]:
    names: set[str] = set()
    for defs in _chain_defs(tdef):
        names.update((defs.get("attributes") or {}).keys())
        names.update((defs.get("properties") or {}).keys())  # properties are readable as attributes
    return names


def _known_node_types(b: _Builder) -> set[str]:
    types: set[str] = set()
    for chain in b.chains.values():
        types.update(chain)
    from toscaparser.elements.entity_type import EntityType
    types.update(k for k in EntityType.TOSCA_DEF if isinstance(k, str) and k.startswith("tosca.nodes."))
    custom = getattr(b.loaded.tosca.topology_template, "custom_defs", None) or {}
    types.update(k for k in custom if isinstance(k, str))
    return types


def _merge_ops(merged: dict[str, dict[str, Any]], iname: str, ops: Any, origin: tuple) -> None:
    if not isinstance(ops, dict):
        return
    key = "Standard" if iname in ("Standard", "tosca.interfaces.node.lifecycle.Standard") else iname
    target = merged.setdefault(key, {})
    for op, spec in ops.items():
        if op in ("type", "inputs", "description", "notifications", "operations"):
            continue
        spec = {"implementation": spec} if isinstance(spec, str) else (spec or {})
        if isinstance(spec, dict):
            prev = target.get(op, {})
            given = "implementation" in spec
            target[op] = {"implementation": spec["implementation"] if given else prev.get("implementation"),
                          "origin": origin if given else prev.get("origin"),
                          "inputs": {**(prev.get("inputs") or {}), **(spec.get("inputs") or {})}}


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _mib(v: Any) -> int | None:
    if v is None or v == "":
        return None
    from toscaparser.elements.scalarunit import ScalarUnit_Size
    try:
        return int(round(ScalarUnit_Size(v).get_num_from_scalar_unit("MiB")))
    except Exception:  # noqa: BLE001 - tosca-parser already reported a malformed size
        return None
