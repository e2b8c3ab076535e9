"""One template per published type family, each node setting every property its
type declares (and every property of the capabilities it offers), with the nodes
its required requirements need: written from the library's declarations, so that
a type the published files add later gets its instance without a test changing.

A family is the published node types whose names share their first part after
the namespace (tosca.nodes.indigo.LRMS.* is "indigo.LRMS", tosca.nodes.WebServer.Apache
"WebServer"); the policy types make one more family.
"""

from __future__ import annotations

from typing import Any

import yaml

from support.reference_types import Types

#: a value of each TOSCA scalar type (what a template author would write)
SAMPLES: dict[str, Any] = {
    "string": "x", "integer": 1, "float": 1.5, "boolean": True, "version": "1.0",
    "timestamp": "2020-01-01T00:00:00Z", "range": [0, 1], "scalar-unit.size": "1 GB",
    "scalar-unit.time": "1 s", "scalar-unit.frequency": "1 GHz", "list": ["x"], "map": {"k": "x"},
}
#: a node for a requirement whose declaration names no node type (or only an abstract one)
ANY_HOST = "tosca.nodes.indigo.Compute"
#: optional requirements dodas needs given, and what to give (type -> requirement -> node type)
NEEDS = {"tosca.nodes.indigo.ElasticCluster": {"wn": "tosca.nodes.indigo.LRMS.WorkerNode.Slurm",
                                               "lrms": "tosca.nodes.indigo.LRMS.FrontEnd.Slurm"}}
ABSTRACT = ("tosca.nodes.Root", None)
#: nodes dodas needs beside one of these types (a worker needs its cluster's front end)
COMPANIONS = {"tosca.nodes.DODAS.WorkerNode.Kubernetes": "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes",
              "tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes": "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes",
              "tosca.nodes.indigo.MesosSlave": "tosca.nodes.indigo.LRMS.FrontEnd.Mesos",
              "tosca.nodes.indigo.LRMS.WorkerNode.Mesos": "tosca.nodes.indigo.LRMS.FrontEnd.Mesos"}
#: values dodas's own checks need (the rest come from the declarations)
GIVEN = {"repos": [{"name": "grafana", "url": "https://grafana.github.io/helm-charts"}],
         # dodas refuses a collector outside the deployment (model/htcondor checks); left out
         "condor_host": None}


def family_of(name: str) -> str:
    parts = name.split(".")[2:]  # past tosca.nodes.
    return ".".join(parts[:2]) if parts[0] in ("indigo", "DODAS", "dodas") and len(parts) > 1 else parts[0]


def value(pdef: dict[str, Any], types: Types, depth: int = 0, name: str = "") -> Any:
    """A value a template could give a property of this declaration: its default
    if it has one, else one of its type within its constraints."""
    if pdef.get("default") is not None:
        return pdef["default"]
    if pdef.get("type", "string") == "string" and name.endswith("url"):
        return "https://example.org/x"  # dodas checks URLs it will fetch
    if pdef.get("type") == "range":
        lo = next((c["in_range"][0] for c in pdef.get("constraints") or [] if "in_range" in c), 1)
        return [lo, lo]
    for c in pdef.get("constraints") or []:
        if "valid_values" in c:
            return c["valid_values"][0]
        if "equal" in c:
            return c["equal"]
        if "in_range" in c:
            return c["in_range"][0]
        if "greater_or_equal" in c:
            return c["greater_or_equal"]
        if "greater_than" in c and isinstance(c["greater_than"], (int, float)):
            return c["greater_than"] + 1
    kind = pdef.get("type", "string")
    entry = pdef.get("entry_schema")
    entry = {"type": entry} if isinstance(entry, str) else entry
    if kind == "list":
        return [value(entry, types, depth + 1)] if entry else ["x"]
    if kind == "map":
        return {"k": value(entry, types, depth + 1)} if entry else {"k": "x"}
    if kind in SAMPLES:
        return SAMPLES[kind]
    dtype = types.get("data_types", kind)
    if dtype is None or depth > 4:
        return "x"
    chain = types.chain("data_types", kind)
    base = next((types.get("data_types", t).get(key) for t in chain for key in ("type", "derived_from")
                 if types.get("data_types", t).get(key) in SAMPLES), None)
    if base is not None:  # a scalar with constraints (tosca.datatypes.network.PortDef)
        cons = [c for t in chain for c in types.get("data_types", t).get("constraints") or []]
        return value({"type": base, "constraints": cons}, types, depth + 1)
    props = types.fields("data_types", kind, "properties")
    return {p: value(d or {}, types, depth + 1) for p, d in props.items()}


class Builder:
    """Node templates for a family: each type once, with what its requirements need."""

    def __init__(self, types: Types):
        self.types = types
        self.nodes: dict[str, dict[str, Any]] = {}
        self.by_type: dict[str, str] = {}

    def add(self, type_name: str, depth: int = 0) -> str:
        if type_name in self.by_type:
            return self.by_type[type_name]
        name = f"n{len(self.nodes)}_" + type_name.rsplit(".", 1)[-1].lower()
        self.by_type[type_name] = name
        node: dict[str, Any] = {"type": type_name}
        self.nodes[name] = node
        props = self.types.fields("node_types", type_name, "properties")
        if props:
            node["properties"] = {p: GIVEN[p] if p in GIVEN else value(d or {}, self.types, name=p)
                                  for p, d in props.items()}
            node["properties"] = {p: v for p, v in node["properties"].items() if v is not None}
        if type_name in COMPANIONS:
            self.add(COMPANIONS[type_name], depth + 1)
        caps = {}
        for cname, cdef in self.types.fields("node_types", type_name, "capabilities").items():
            ctype = cdef if isinstance(cdef, str) else (cdef or {}).get("type")
            cprops = self.types.fields("capability_types", ctype, "properties")
            if cprops:
                caps[cname] = {"properties": {p: value(d or {}, self.types) for p, d in cprops.items()}}
        if caps:
            node["capabilities"] = caps
        reqs = []
        for rname, rdef in self.types.requirements(type_name).items():
            rdef = {"capability": rdef} if isinstance(rdef, str) else rdef or {}
            lo = (rdef.get("occurrences") or [1, 1])[0]
            target = NEEDS.get(type_name, {}).get(rname) or rdef.get("node")
            if (lo < 1 and rname not in NEEDS.get(type_name, {})) or depth > 3:
                continue
            reqs.append({rname: self.add(ANY_HOST if target in ABSTRACT else target, depth + 1)})
        if reqs:
            node["requirements"] = reqs
        return name


def templates(library: dict[str, Any], published: set[str], policies: set[str]) -> dict[str, str]:
    """family -> template text, for the published node types (and policy types)."""
    types = Types(library)
    families: dict[str, list[str]] = {}
    for name in sorted(published):
        families.setdefault(family_of(name), []).append(name)
    out = {}
    for family, names in families.items():
        b = Builder(types)
        for name in names:
            b.add(name)
        out[family] = _text({"node_templates": b.nodes})
    b = Builder(types)
    target = b.add(ANY_HOST)
    pols = [{f"p{i}": {"type": p, "targets": [target],
                       "properties": {k: value(d or {}, types) for k, d in types.fields("policy_types", p,
                                                                                       "properties").items()}}}
            for i, p in enumerate(sorted(policies))]
    out["policies"] = _text({"node_templates": b.nodes, "policies": pols})
    return out


def _text(topology: dict[str, Any]) -> str:
    return yaml.safe_dump({"tosca_definitions_version": "tosca_simple_yaml_1_0",
                           "imports": ["https://raw.githubusercontent.com/indigo-dc/tosca-types/master/"
                                       "custom_types.yaml"],
                           "topology_template": topology}, sort_keys=False)
