"""`dodas types`: the type library, and which of its node types dodas can deploy.

Read from the library files themselves (no TOSCA parsing: this is a listing), with the
same rule as `model.support` applies to a template's nodes: a node type is
deployable when it is a machine, when it or an ancestor names a lifecycle playbook
that dodas ships, or when it is not of the INDIGO/DODAS families (a base for the
user's own types).
"""

from __future__ import annotations

from typing import Any

from dodas import paths
from dodas.model.support import INSTEAD, of_a_family

COMPUTE = "tosca.nodes.Compute"
SECTIONS = ("node_types", "capability_types", "relationship_types", "data_types", "policy_types",
            "artifact_types", "interface_types", "group_types")


def library() -> dict[str, Any]:
    """The merged library: dodas's file and the published declarations."""
    from dodas.tosca import typelib

    return typelib.sections()


def _has_playbook(tdef: dict[str, Any]) -> bool:
    for interface in (tdef.get("interfaces") or {}).values():
        for op in (interface or {}).values() if isinstance(interface, dict) else ():
            impl = op.get("implementation") if isinstance(op, dict) else op
            if isinstance(impl, dict):
                impl = impl.get("primary")
            if isinstance(impl, str) and impl and (paths.PLAYBOOKS_DIR / impl).is_file():
                return True
    return False


def listing(deployable_only: bool = False) -> list[dict[str, Any]]:
    """Every type of the library: name, kind, parent, and for node types whether
    dodas deploys them (and if not, what it offers instead)."""
    data = library()
    nodes = data.get("node_types") or {}
    out: list[dict[str, Any]] = []
    for section in SECTIONS:
        for name, tdef in sorted((data.get(section) or {}).items()):
            tdef = tdef if isinstance(tdef, dict) else {}
            item: dict[str, Any] = {"name": name, "kind": section.removesuffix("_types"),
                                    "derived_from": tdef.get("derived_from")}
            if section == "node_types":
                item["deployable"], item["instead"] = _verdict(name, nodes)
            elif deployable_only:
                continue
            if deployable_only and not item.get("deployable"):
                continue
            out.append(item)
    return out


def _verdict(name: str, nodes: dict[str, Any]) -> tuple[bool, str | None]:
    chain, seen = [], set()
    t: str | None = name
    while t and t not in seen:
        seen.add(t)
        chain.append(t)
        t = (nodes.get(t) or {}).get("derived_from") if isinstance(nodes.get(t), dict) else None
    if COMPUTE in chain or any(isinstance(nodes.get(c), dict) and _has_playbook(nodes[c]) for c in chain):
        return True, None
    if not of_a_family(chain):
        return True, None
    instead = next((why for prefix, why in INSTEAD if any(c.startswith(prefix) for c in chain)),
                   "dodas has no playbooks for this type")
    return False, instead
