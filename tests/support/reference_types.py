"""Checking dodas's type library against the published INDIGO and DODAS type files.

The published files (INDIGO's custom_types.yaml on each branch templates import,
DODAS-TS's tosca-types/) live outside the repository; `reference_root` finds them
through DODAS_REFERENCE_TYPES. `problems` reads every YAML file under that folder,
whatever its branch or depth, and lists each declaration the library lacks or makes
narrower, so that a template written against any branch validates with dodas.

"Narrower" is judged for acceptance, which is what a template meets:
- a type must exist and have the published parent among its ancestors, or stand in
  for it as `HOSTLESS` says (dodas may
  put a more specific type in between: DODAS.FrontEnd.Kubernetes under
  LRMS.FrontEnd.Kubernetes);
- a property or attribute must exist (own or inherited) with the published type or
  a looser one (`_type_ok`: float for integer; a map for a data type; an ancestor
  data type, or a descendant adding only optional properties; integer for a port
  published as a string, which tosca-parser's integer takes), entry_schema alike, no constraint the published
  declaration lacks, and must not be required-without-default where the published
  one is optional or has a default; a published default must have a default in
  the library (its value may be dodas's: where branches differ it cannot be all);
- a requirement must accept the published capability, node and relationship (the
  same type or an ancestor) and occurrences at least as wide;
- a capability must be of the published type or a descendant (it still carries
  every published property), with valid_source_types and occurrences at least as wide;
- relationship, policy and artifact types: targets, mime type and extensions kept.
Node types' interfaces and artifacts are implementation (playbooks, roles), which
is dodas's own; descriptions and display metadata are not declarations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

ENV = "DODAS_REFERENCE_TYPES"
DEFAULT_ROOT = "/work/shared/reference/tosca-types"
SECTIONS = ("node_types", "capability_types", "data_types", "relationship_types", "artifact_types",
            "interface_types", "policy_types", "group_types")
UNBOUNDED = float("inf")
#: Where a published type derives from tosca.nodes.SoftwareComponent (or a normative
#: type under it: WebServer, WebApplication, ...), dodas's declaration may derive
#: from tosca.nodes.Root and declare that parent's properties, capabilities and
#: requirements itself, its `host` with occurrences from 0. tosca-parser makes every
#: inherited requirement mandatory; the INDIGO orchestrator does not, and INDIGO's
#: and DODAS's templates leave `host` out on ElasticCluster, HelmInstall, ...
#: (WebApplication is the other normative type with a mandatory host.) Such an
#: inherited requirement must exist, optional, with the relationship; its target
#: node and capability are dodas's to say (see `_normative_view`).
HOSTLESS = ("tosca.nodes.SoftwareComponent", "tosca.nodes.WebApplication")
SCALARS = ("string", "integer", "float", "boolean", "timestamp", "version", "range", "list", "map")
#: published type -> library types that accept every value it does (and more)
LOOSER: dict[str, tuple[str, ...]] = {
    "integer": ("float", "scalar-unit.size"),
}


def reference_root() -> Path:
    return Path(os.environ.get(ENV, DEFAULT_ROOT))


def reference_files(root: Path) -> list[Path]:
    """Every YAML file under `root`, at any depth: a branch added later is read too."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml"))


def declarations(root: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(file relative to root, section, type name, declaration) for every published type."""
    out = []
    for f in reference_files(root):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for section in SECTIONS:
            for name, tdef in (data.get(section) or {}).items():
                out.append((str(f.relative_to(root)), section, name, tdef or {}))
    return out


class Types:
    """The library's types over TOSCA's normative ones, with inheritance resolved."""

    def __init__(self, library: dict[str, Any]):
        from toscaparser.elements.entity_type import EntityType

        self.lib = library
        self.normative = EntityType.TOSCA_DEF

    def get(self, section: str, name: str) -> dict[str, Any] | None:
        tdef = (self.lib.get(section) or {}).get(name)
        if tdef is None and isinstance(name, str) and name.startswith("tosca."):
            tdef = self.normative.get(name)
        return tdef

    def chain(self, section: str, name: str) -> list[str]:
        out: list[str] = []
        while name and name not in out:
            tdef = self.get(section, name)
            if tdef is None:
                break
            out.append(name)
            name = tdef.get("derived_from")
        return out

    def is_a(self, section: str, name: str, ancestor: str) -> bool:
        return ancestor in self.chain(section, name) or (section == "data_types" and name == ancestor)

    def fields(self, section: str, name: str, key: str) -> dict[str, Any]:
        """A mapping field (properties, attributes, capabilities) with inherited entries."""
        out: dict[str, Any] = {}
        for t in reversed(self.chain(section, name)):
            out.update(self.get(section, t).get(key) or {})
        return out

    def requirements(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in reversed(self.chain("node_types", name)):
            for req in self.get("node_types", t).get("requirements") or []:
                out.update(req)
        return out


def problems(root: Path, library: dict[str, Any]) -> list[str]:
    types = Types(library)
    out: list[str] = []
    for file, section, name, tdef in declarations(root):
        where = f"{file}: {section} {name}"
        if (library.get(section) or {}).get(name) is None:
            out.append(f"{where}: missing")
            continue
        parent = tdef.get("derived_from")
        if parent and parent not in types.chain(section, name)[1:]:
            if _stands_in(section, parent, types.chain(section, name), types):
                # the parent's own declarations must then be the type's
                tdef = _with_parent(tdef, _normative_view(parent, types))
            else:
                out.append(f"{where}: published parent {parent} is not an ancestor "
                           f"({' > '.join(types.chain(section, name))})")
        for key in ("properties", "attributes"):
            have = types.fields(section, name, key)
            noun = "property" if key == "properties" else "attribute"
            for prop, pdef in (tdef.get(key) or {}).items():
                out += _property(f"{where} {noun} {prop}", pdef or {}, have.get(prop), types,
                                 required=key == "properties")
        if section == "node_types":
            out += _requirements(where, tdef, types.requirements(name), types)
        if section in ("node_types",):
            have = types.fields(section, name, "capabilities")
            for cap, cdef in (tdef.get("capabilities") or {}).items():
                out += _capability(f"{where} capability {cap}", cdef, have.get(cap), types)
        mine = library[section][name]
        for key in ("valid_target_types", "targets", "file_ext"):
            if key in tdef and key in mine and not set(tdef[key]) <= set(mine[key]):
                out.append(f"{where}: {key} {mine[key]} narrower than {tdef[key]}")
        if "mime_type" in tdef and mine.get("mime_type") != tdef["mime_type"]:
            out.append(f"{where}: mime_type {mine.get('mime_type')} instead of {tdef['mime_type']}")
        if section == "interface_types":
            ops = set(tdef) - {"derived_from", "description", "inputs", "version", "metadata"}
            lost = ops - set(mine)
            if lost:
                out.append(f"{where}: operations missing: {sorted(lost)}")
    return out


def _stands_in(section: str, parent: str, chain: list[str], types: Types) -> bool:
    """A normative software parent may be replaced by tosca.nodes.Root (HOSTLESS)."""
    return (section == "node_types" and chain[-1:] == ["tosca.nodes.Root"] and parent in types.normative
            and bool(set(HOSTLESS) & set(Types({}).chain("node_types", parent))))


def _with_parent(tdef: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """A declaration with its parent's entries added (its own win, as TOSCA says)."""
    out = dict(tdef)
    for key in ("properties", "attributes", "capabilities"):
        out[key] = {**parent[key], **(tdef.get(key) or {})}
    own = {n for req in tdef.get("requirements") or [] for n in req}
    out["requirements"] = [*(tdef.get("requirements") or []),
                           *(r for r in parent["requirements"] if not set(r) & own)]
    return out


def _normative_view(name: str, types: Types) -> dict[str, Any]:
    """A normative node type's declarations with what it inherits, up to (not including) Root."""
    chain = types.chain("node_types", name)[:-1]
    out: dict[str, Any] = {"properties": {}, "attributes": {}, "capabilities": {}, "requirements": []}
    for t in reversed(chain):
        tdef = types.normative[t]
        for key in ("properties", "attributes", "capabilities"):
            out[key].update(tdef.get(key) or {})
        # what a requirement inherited this way may target is the type's own business:
        # DODAS's templates host a HelmInstall on a Kubernetes front end, not the
        # machine SoftwareComponent names, and dodas says so at `validate`
        out["requirements"] += [{n: {k: v for k, v in d.items() if k in ("relationship", "occurrences")}
                                 for n, d in req.items()} for req in tdef.get("requirements") or []]
    return out


def _type_ok(published: Any, mine: Any, types: Types, prop: str = "") -> bool:
    """Whether a value of the published type is one of the library's type."""
    if published == mine or mine in LOOSER.get(published, ()):
        return True
    if not (isinstance(published, str) and isinstance(mine, str)):
        return False
    if published == "string" and mine == "integer" and prop.endswith("_port"):
        return True  # a port: tosca-parser's integer takes one written as a string ("8888")
    if mine == "map" and types.get("data_types", published) is not None and published not in SCALARS:
        return True  # a map takes any mapping, the data type's among them
    if types.is_a("data_types", published, mine):
        return True  # an ancestor data type
    if types.is_a("data_types", mine, published):
        # a descendant that only adds optional properties takes every value the published one does
        own = types.fields("data_types", published, "properties")
        added = {k: v for k, v in types.fields("data_types", mine, "properties").items() if k not in own}
        return all(v.get("required") is False or "default" in v for v in added.values())
    return False


def _property(where: str, pdef: dict[str, Any], mine: Any, types: Types, *, required: bool) -> list[str]:
    if mine is None:
        return [f"{where}: missing"]
    out = []
    if not _type_ok(pdef.get("type"), mine.get("type"), types, where.rsplit(" ", 1)[-1]):
        out.append(f"{where}: type {mine.get('type')} instead of {pdef.get('type')}")
    entry = (pdef.get("entry_schema") or {}).get("type") if isinstance(pdef.get("entry_schema"), dict) \
        else pdef.get("entry_schema")
    mine_entry = (mine.get("entry_schema") or {}).get("type") if isinstance(mine.get("entry_schema"), dict) \
        else mine.get("entry_schema")
    if entry is not None and mine_entry is not None and not _type_ok(entry, mine_entry, types):
        out.append(f"{where}: entry_schema {mine_entry} instead of {entry}")
    optional = pdef.get("required") is False or "default" in pdef
    strict = mine.get("required", True) is not False and "default" not in mine
    if required and optional and strict:
        out.append(f"{where}: required without a default (published optional or with a default)")
    if "default" in pdef and "default" not in mine and mine.get("required", True) is not False:
        out.append(f"{where}: published default {pdef['default']!r} missing")
    for c in mine.get("constraints") or []:
        if not _constraint_within(c, pdef.get("constraints") or []):
            out.append(f"{where}: constraint {c} not published")
    return out


def _constraint_within(c: dict[str, Any], published: list[dict[str, Any]]) -> bool:
    if c in published:
        return True
    if "valid_values" in c:
        return any(set(map(str, p.get("valid_values", []))) <= set(map(str, c["valid_values"]))
                   for p in published if "valid_values" in p)
    return False


def _occurrences(value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        return 1, 1
    lo, hi = value
    return lo, UNBOUNDED if hi == "UNBOUNDED" else hi


def _requirements(where: str, tdef: dict[str, Any], have: dict[str, Any], types: Types) -> list[str]:
    out = []
    for req in tdef.get("requirements") or []:
        for rname, rdef in req.items():
            w = f"{where} requirement {rname}"
            mine = have.get(rname)
            if mine is None:
                out.append(f"{w}: missing")
                continue
            rdef = {"capability": rdef} if isinstance(rdef, str) else rdef or {}
            mine = {"capability": mine} if isinstance(mine, str) else mine
            for key, section in (("capability", "capability_types"), ("node", "node_types"),
                                 ("relationship", "relationship_types")):
                pub, lib = rdef.get(key), mine.get(key)
                pub = pub.get("type") if isinstance(pub, dict) else pub
                lib = lib.get("type") if isinstance(lib, dict) else lib
                if pub and lib and lib not in types.chain(section, pub):
                    out.append(f"{w}: {key} {lib} does not accept {pub}")
            plo, phi = _occurrences(rdef.get("occurrences"))
            mlo, mhi = _occurrences(mine.get("occurrences"))
            if mlo > plo or mhi < phi:
                out.append(f"{w}: occurrences {mine.get('occurrences')} narrower than {rdef.get('occurrences')}")
    return out


def _capability(where: str, cdef: Any, mine: Any, types: Types) -> list[str]:
    if mine is None:
        return [f"{where}: missing"]
    cdef = {"type": cdef} if isinstance(cdef, str) else cdef or {}
    mine = {"type": mine} if isinstance(mine, str) else mine
    out = []
    if cdef.get("type") and cdef["type"] not in types.chain("capability_types", mine.get("type")):
        out.append(f"{where}: type {mine.get('type')} is not a {cdef['type']}")
    pub, lib = cdef.get("valid_source_types"), mine.get("valid_source_types")
    if lib is not None and (pub is None or not set(pub) <= set(lib)):
        out.append(f"{where}: valid_source_types {lib} narrower than {pub}")
    plo, phi = _occurrences(cdef.get("occurrences") or [1, "UNBOUNDED"])
    mlo, mhi = _occurrences(mine.get("occurrences") or [1, "UNBOUNDED"])
    if mlo > plo or mhi < phi:
        out.append(f"{where}: occurrences {mine.get('occurrences')} narrower than {cdef.get('occurrences')}")
    have = types.fields("capability_types", mine.get("type"), "properties")
    have.update(mine.get("properties") or {})
    for prop, pdef in (cdef.get("properties") or {}).items():
        out += _property(f"{where} property {prop}", pdef or {}, have.get(prop), types, required=True)
    return out
