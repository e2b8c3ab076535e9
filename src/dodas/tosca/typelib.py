"""dodas's type library: its files, merged, and the part of it a template reaches.

The library is several files under `tosca/library/`: `dodas_types.yaml` holds
dodas's own types and the INDIGO/DODAS types dodas deploys or refines, each with
its playbooks and metadata; the other files (`published_*.yaml`) declare what the
published INDIGO-DataCloud and DODAS-TS type files declare and dodas's file does
not, so that templates written against any of their branches validate. A type in
several files is one type: the first file (dodas's) gives its parent, operations
and metadata, and each later file adds the properties, attributes, capabilities
and requirements the earlier ones lack (a name already there keeps its
definition: dodas's file is where a conflicting declaration is made loose enough
for both, so that the rule has one home).

tosca-parser validates every type it is handed, and the merged library is large
(several hundred types); `reachable` gives a template only the types it names and
those they name in turn, so that a small template costs what it did when the
library was small. The merged library is read once per process (kept pickled, per
type, so that each load gets copies tosca-parser may change).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

from dodas import paths

#: the mapping fields a later file may add entries to
MERGED_FIELDS = ("properties", "attributes", "capabilities", "interfaces")


def files() -> tuple[Path, ...]:
    """dodas's own file first, then the published declarations in name order."""
    lib = paths.TYPE_LIBRARY
    return (lib, *sorted(p for p in lib.parent.glob("*.yaml") if p != lib))


def merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add `extra`'s type sections to `into` by the rule in this module's docstring."""
    for section, types in extra.items():
        if not (section.endswith("_types") and isinstance(types, dict)):
            continue
        have = into.setdefault(section, {})
        for name, tdef in types.items():
            mine = have.get(name)
            if not isinstance(mine, dict):
                have[name] = tdef
                continue
            for key in MERGED_FIELDS:
                if isinstance(tdef.get(key), dict):
                    mine[key] = {**tdef[key], **(mine.get(key) or {})}
            if isinstance(tdef.get("requirements"), list):
                names = {n for req in mine.get("requirements") or [] for n in req}
                extra_reqs = [r for r in tdef["requirements"] if not set(r) & names]
                if extra_reqs:
                    mine["requirements"] = [*(mine.get("requirements") or []), *extra_reqs]


def _read(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}


@functools.lru_cache(maxsize=1)
def _pickled() -> dict[str, dict[str, bytes]]:
    merged: dict[str, Any] = {}
    for f in files():
        merge(merged, _read(f))
    return {section: {name: pickle.dumps(tdef, protocol=pickle.HIGHEST_PROTOCOL) for name, tdef in types.items()}
            for section, types in merged.items()}


def sections() -> dict[str, dict[str, Any]]:
    """The merged library's type sections, a copy of its own for the caller."""
    return {section: {name: pickle.loads(b) for name, b in types.items()} for section, types in _pickled().items()}


@functools.lru_cache(maxsize=1)
def published_only() -> frozenset[str]:
    """Node types only the published files declare: dodas knows them and has no
    playbooks for them, whatever their name (tosca.nodes.WebServer.Apache too)."""
    own = set((_read(paths.TYPE_LIBRARY).get("node_types") or {}))
    return frozenset(name for f in files()[1:] for name in (_read(f).get("node_types") or {}) if name not in own)


def names() -> list[str]:
    return [name for types in _pickled().values() for name in types]


@functools.lru_cache(maxsize=1)
def _references() -> dict[str, frozenset[str]]:
    """type name -> the library types its definition names (parent, property and
    entry types, capability, node and relationship types, targets, ...)."""
    known = set(names())
    out: dict[str, frozenset[str]] = {}
    for types in _pickled().values():
        for name, b in types.items():
            out[name] = frozenset(s for s in _strings(pickle.loads(b)) if s in known)
    # a requirement that names a capability and no node makes tosca-parser look for
    # the first node type offering that capability: it must be there to be found
    offered: set[str] = set()
    for ntype, b in _pickled().get("node_types", {}).items():
        for cap in (pickle.loads(b).get("capabilities") or {}).values():
            ctype = cap.get("type") if isinstance(cap, dict) else None
            if ctype in out and ctype not in offered:
                offered.add(ctype)
                out[ctype] = out[ctype] | {ntype}
    return out


def _strings(value: Any) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            found.append(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found


def reachable(tpl: Any) -> dict[str, dict[str, Any]]:
    """The library's sections restricted to the types `tpl` names, directly or
    through the library's own definitions. A string that happens to spell a type
    name only adds that type: more than needed, never less."""
    refs = _references()
    todo = [s for s in _strings(tpl) if s in refs]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(refs[name] - seen)
    return {section: {name: pickle.loads(b) for name, b in types.items() if name in seen}
            for section, types in _pickled().items()}
