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
library was small. The merged library is read once per process (kept serialized, per
type, so that each load gets copies tosca-parser may change), and kept between
processes in the cache directory, keyed by the files' bytes: merging the YAML files
took about 70 ms of every `validate`, `plan` and `up`; loading the kept copy takes 1.
The kept copy is `marshal` data (dicts, lists, strings, numbers; marshal makes no
objects of other classes and runs nothing), and any unreadable copy is made again.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import os
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


#: the kept copy's layout; a change of it (or of `merge`'s rule) must change this
_KEPT_FORMAT = b"typelib-1"


@functools.lru_cache(maxsize=1)
def _kept() -> tuple[dict[str, dict[str, bytes]], tuple[str, ...]]:
    """(section -> type name -> the type's definition, marshalled; the node types only
    the published files declare), from the cache directory when a copy made from
    these very files is there, else merged from the YAML files and kept."""
    texts = [f.read_bytes() for f in files()]
    digest = hashlib.sha256(_KEPT_FORMAT)
    for f, text in zip(files(), texts):
        digest.update(b"\0%s\0%d\0" % (f.name.encode(), len(text)) + text)
    kept = paths.cache_dir() / "typelib" / f"{digest.hexdigest()[:40]}.marshal"
    try:
        data = marshal.loads(kept.read_bytes())
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], dict) and isinstance(data[1], tuple):
            return data
    except (OSError, ValueError, EOFError, TypeError):
        pass  # not there, or not readable: made again below
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [yaml.load(text.decode("utf-8"), Loader=loader) or {} for text in texts]
    own = set(docs[0].get("node_types") or {})
    published = tuple(sorted({name for doc in docs[1:] for name in (doc.get("node_types") or {}) if name not in own}))
    merged: dict[str, Any] = {}
    for doc in docs:
        merge(merged, doc)
    data = ({section: {name: marshal.dumps(tdef) for name, tdef in types.items()}
             for section, types in merged.items() if isinstance(types, dict)}, published)
    _keep(kept, marshal.dumps(data))
    return data


def _keep(path: Path, blob: bytes) -> None:
    """Write the kept copy whole or not at all (another process may be reading it);
    a cache that cannot be written only costs the next process the merge again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    except OSError:
        pass


def _stored() -> dict[str, dict[str, bytes]]:
    return _kept()[0]


def sections() -> dict[str, dict[str, Any]]:
    """The merged library's type sections, a copy of its own for the caller."""
    return {section: {name: marshal.loads(b) for name, b in types.items()} for section, types in _stored().items()}


def published_only() -> frozenset[str]:
    """Node types only the published files declare: dodas knows them and has no
    playbooks for them, whatever their name (tosca.nodes.WebServer.Apache too)."""
    return frozenset(_kept()[1])


def names() -> list[str]:
    return [name for types in _stored().values() for name in types]


@functools.lru_cache(maxsize=1)
def _references() -> dict[str, frozenset[str]]:
    """type name -> the library types its definition names (parent, property and
    entry types, capability, node and relationship types, targets, ...)."""
    known = set(names())
    out: dict[str, frozenset[str]] = {}
    for types in _stored().values():
        for name, b in types.items():
            out[name] = frozenset(s for s in _strings(marshal.loads(b)) if s in known)
    # a requirement that names a capability and no node makes tosca-parser look for
    # the first node type offering that capability: it must be there to be found
    offered: set[str] = set()
    for ntype, b in _stored().get("node_types", {}).items():
        for cap in (marshal.loads(b).get("capabilities") or {}).values():
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
    return {section: {name: marshal.loads(b) for name, b in types.items() if name in seen}
            for section, types in _stored().items()}
