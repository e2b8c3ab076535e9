"""Write the library's `published_*.yaml` from the published INDIGO/DODAS type files.

    PYTHONPATH=src:tests python tools/published_types.py [REFERENCE_FOLDER]

For each type the published files declare (every YAML file under the folder, every
branch), the union of its declarations across branches, loosened where they
differ (`_union_property` and friends say how); then, against dodas's own
`dodas_types.yaml`, either the whole type (one dodas lacks: known only, no
operations) or just the entries dodas's declaration lacks (optional there, since
dodas's own templates of that type do without them). Descriptions, display
metadata, interfaces and artifacts are not carried: they are prose or
implementation, and dodas has its own. What cannot be made loose here (a
property whose published types conflict with dodas's) is printed, to be settled
by hand in dodas_types.yaml; tests/test_reference_types.py checks the result.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from support.reference_types import SECTIONS, Types, declarations, reference_root

from dodas import paths
from dodas.tosca import typelib

DROP = ("description", "metadata", "interfaces", "artifacts")
PROP_DROP = ("description", "value", "status")
FAMILY_FILES = {"dodas": "published_dodas.yaml", "indigo": "published_indigo.yaml"}


def _family(name: str) -> str:
    return "dodas" if ".DODAS." in name or ".dodas." in name else "indigo"


def _occ(v: Any, default: list) -> list:
    return v if isinstance(v, list) and len(v) == 2 else default


def _widest(a: list, b: list) -> list:
    lo = min(a[0], b[0])
    his = [a[1], b[1]]
    hi = "UNBOUNDED" if "UNBOUNDED" in his else max(his)
    return [lo, hi]


def _union_property(a: dict[str, Any], b: dict[str, Any], where: str) -> dict[str, Any]:
    """Two declarations of one property: the looser type, optional if either is,
    a default if either has one, only the constraints both impose."""
    out = dict(a)
    ta, tb = a.get("type"), b.get("type")
    if ta != tb:
        if {ta, tb} == {"integer", "float"}:
            out["type"] = "float"
        else:
            print(f"CONFLICT {where}: {ta} / {tb}", file=sys.stderr)
    if a.get("required", True) is False or b.get("required", True) is False:
        out["required"] = False
    if "default" not in out and "default" in b:
        out["default"] = b["default"]
    ca, cb = a.get("constraints") or [], b.get("constraints") or []
    common = [c for c in ca if c in cb]
    va = next((c for c in ca if "valid_values" in c), None)
    vb = next((c for c in cb if "valid_values" in c), None)
    if va and vb and va != vb:
        common.append({"valid_values": list(dict.fromkeys([*va["valid_values"], *vb["valid_values"]]))})
    if common:
        out["constraints"] = common
    else:
        out.pop("constraints", None)
    return out


def _clean_prop(p: Any) -> dict[str, Any]:
    p = dict(p or {})
    for k in PROP_DROP:
        p.pop(k, None)
    return p


def _union(decls: list[dict[str, Any]], section: str, name: str, types: Types) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in decls:
        d = copy.deepcopy(d)
        parent = d.get("derived_from")
        if parent and "derived_from" in out and out["derived_from"] != parent:
            if out["derived_from"] in types.chain(section, parent):
                out["derived_from"] = parent  # the more specific of the two
            elif parent not in types.chain(section, out["derived_from"]):
                print(f"PARENT {section} {name}: {out['derived_from']} / {parent}", file=sys.stderr)
        elif parent:
            out.setdefault("derived_from", parent)
        for key in ("properties", "attributes"):
            for p, pd in (d.get(key) or {}).items():
                pd = _clean_prop(pd)
                have = out.setdefault(key, {})
                have[p] = _union_property(have[p], pd, f"{name}.{p}") if p in have else pd
        for cname, cd in (d.get("capabilities") or {}).items():
            cd = {"type": cd} if isinstance(cd, str) else dict(cd or {})
            cd.pop("description", None)
            have = out.setdefault("capabilities", {})
            if cname not in have:
                have[cname] = cd
                continue
            h = have[cname]
            if h.get("type") != cd.get("type"):
                if h.get("type") in types.chain("capability_types", cd.get("type")):
                    h["type"] = cd["type"]
                elif cd.get("type") not in types.chain("capability_types", h.get("type")):
                    print(f"CAPTYPE {name}.{cname}: {h.get('type')} / {cd.get('type')}", file=sys.stderr)
            if "valid_source_types" in h and "valid_source_types" in cd:
                h["valid_source_types"] = list(dict.fromkeys([*h["valid_source_types"], *cd["valid_source_types"]]))
            else:
                h.pop("valid_source_types", None)
            if "occurrences" in h or "occurrences" in cd:
                h["occurrences"] = _widest(_occ(h.get("occurrences"), [1, "UNBOUNDED"]),
                                           _occ(cd.get("occurrences"), [1, "UNBOUNDED"]))
            for p, pd in (cd.get("properties") or {}).items():
                hp = h.setdefault("properties", {})
                hp[p] = _union_property(hp[p], _clean_prop(pd), f"{name}.{cname}.{p}") if p in hp else _clean_prop(pd)
        for req in d.get("requirements") or []:
            for rname, rd in req.items():
                rd = {"capability": rd} if isinstance(rd, str) else dict(rd or {})
                rd.pop("description", None)
                have = out.setdefault("requirements", [])
                found = next((r for r in have if rname in r), None)
                if found is None:
                    have.append({rname: rd})
                    continue
                h = found[rname]
                for key, sec in (("capability", "capability_types"), ("node", "node_types"),
                                 ("relationship", "relationship_types")):
                    if h.get(key) != rd.get(key):
                        if rd.get(key) in types.chain(sec, h.get(key)):
                            h[key] = rd[key]  # the ancestor accepts both
                        elif h.get(key) not in types.chain(sec, rd.get(key)):
                            h.pop(key, None)
                            print(f"REQ {name}.{rname}.{key} dropped", file=sys.stderr)
                if "occurrences" in h or "occurrences" in rd:
                    h["occurrences"] = _widest(_occ(h.get("occurrences"), [1, 1]), _occ(rd.get("occurrences"), [1, 1]))
        for key in ("valid_target_types", "targets", "file_ext"):
            if key in d:
                out[key] = list(dict.fromkeys([*(out.get(key) or []), *d[key]]))
        for key, value in d.items():
            if key not in out and key not in DROP and key not in ("requirements", "capabilities"):
                out[key] = value
    return out


def main(root: Path) -> None:
    own = typelib._read(paths.TYPE_LIBRARY)
    by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _file, section, name, tdef in declarations(root):
        by_name.setdefault((section, name), []).append(tdef)
    # the published hierarchy over dodas's, for choosing between parents
    union_view: dict[str, Any] = copy.deepcopy(own)
    for (section, name), decls in by_name.items():
        union_view.setdefault(section, {}).setdefault(name, decls[-1])
    types = Types(union_view)
    own_types = Types(own)
    out: dict[str, dict[str, dict[str, Any]]] = {f: {} for f in FAMILY_FILES}
    for (section, name), decls in by_name.items():
        u = _union(decls, section, name, types)
        if name not in (own.get(section) or {}):
            out[_family(name)].setdefault(section, {})[name] = u
            continue
        add: dict[str, Any] = {}
        for key in ("properties", "attributes", "capabilities"):
            have = own_types.fields(section, name, key)
            extra = {k: v for k, v in (u.get(key) or {}).items() if k not in have}
            if key == "properties":
                # dodas's templates of this type do without them: accepted, never required
                extra = {k: v if "default" in v else {**v, "required": False} for k, v in extra.items()}
            if extra:
                add[key] = extra
        if section == "node_types":
            have = own_types.requirements(name)
            extra_reqs = [{n: {**d, "occurrences": [0, _occ(d.get("occurrences"), [1, 1])[1]]} for n, d in r.items()}
                          for r in u.get("requirements") or [] if not set(r) & set(have)]
            if extra_reqs:
                add["requirements"] = extra_reqs
        if add:
            out[_family(name)].setdefault(section, {})[name] = add
    for fam, fname in FAMILY_FILES.items():
        _write(paths.TYPE_LIBRARY.parent / fname, fam, out[fam], own)


HEADER = """\
# Declarations of the published {title} type files (every branch templates
# import) that dodas_types.yaml does not make itself: whole types dodas knows
# only (no operations: `plan` and `up` refuse their nodes, `validate` accepts
# them), and the properties, capabilities and requirements that dodas's own
# declaration of a type lacks. tosca/typelib.py merges this file under dodas's;
# tools/published_types.py writes it, tests/test_reference_types.py checks it.
tosca_definitions_version: tosca_simple_yaml_1_0

"""


def _write(path: Path, family: str, sections: dict[str, Any], own: dict[str, Any]) -> None:
    title = "DODAS-TS" if family == "dodas" else "INDIGO-DataCloud"
    text = HEADER.format(title=title)
    for section in SECTIONS:
        types = sections.get(section)
        if not types:
            continue
        text += f"{section}:\n"
        for name in sorted(types):
            if section == "node_types" and name not in (own.get(section) or {}):
                text += "  # known only\n"
            elif name in (own.get(section) or {}):
                text += "  # adds to dodas_types.yaml's declaration\n"
            body = yaml.safe_dump({name: types[name]}, sort_keys=False, default_flow_style=False, width=110)
            text += "".join("  " + line + "\n" for line in body.splitlines()) + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else reference_root())
