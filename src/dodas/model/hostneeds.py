"""What a node's host must have, declared by its type: read into `Node.host_needs`.

A type says it in its `metadata`, one key per need:

    metadata:
      dodas.host.java: "17"                          # Java 17 or newer
      dodas.host.program.xrootd: xrootd-server        # the program xrootd, from that package
      dodas.host.program_as_root.unshare: util-linux  # needed only when configured as root
      dodas.host.disk.cache_size: cache_path          # free disk of the size in property cache_size,
                                                      # where property cache_path says (empty: the
                                                      # instance's directory)
      dodas.host.machine: vm                          # a machine with root (systemd, packages)

Why metadata: it is the one section of a node type that TOSCA leaves to the
processor (a map of strings, which tosca-parser keeps on the type without
interpreting it), so the library stays a TOSCA document any parser accepts,
the declaration sits on the type it belongs to, a template's own types can
declare needs the same way, and strings need no schema of dodas's inside
TOSCA's. A key per need makes inheritance plain: the needs of a node are those
of every type in its chain, a more specific type's key replacing its
ancestor's, and an empty value withdrawing it (an INDIGO type derived from a
dodas type inherits its needs without a word).

Disk needs are checked here too against what a host declares (a cache larger
than its host's `disk_size` can never fit); what a host actually has is the
provider's preflight's to check (`providers/base.py`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dodas.errors import Diagnostic
from dodas.model.deployment import DISK, JAVA, MACHINE, MACHINE_KINDS, PROGRAM, HostNeed, Node

if TYPE_CHECKING:
    from dodas.yamlsource import SourceMap

PREFIX = "dodas.host."
_NODES = ("topology_template", "node_templates")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_FORMS = ("dodas.host.java: VERSION, dodas.host.program.PROGRAM: PACKAGE, dodas.host.program_as_root.PROGRAM: "
          "PACKAGE, dodas.host.disk.SIZE_PROPERTY: PATH_PROPERTY, dodas.host.machine: vm")


def declare(smap: SourceMap, data: dict[str, Any], chains: dict[str, list[tuple[str, dict[str, Any]]]],
            nodes: dict[str, Node], diags: list[Diagnostic]) -> None:
    """Set each node's `host_needs` from the metadata of its type chain (`chains`:
    node name -> (type name, definition), most specific first); a declaration
    dodas cannot read is a located error, said once per type and key."""
    said: set[tuple[str, str]] = set()
    own = data.get("node_types") if isinstance(data.get("node_types"), dict) else {}
    for n in nodes.values():
        keys: dict[str, tuple[str, Any]] = {}
        for tname, tdef in reversed(chains.get(n.name, [])):
            meta = tdef.get("metadata")
            if isinstance(meta, dict):
                keys.update({k: (tname, v) for k, v in meta.items() if isinstance(k, str) and k.startswith(PREFIX)})
        declared = {p for _t, d in chains.get(n.name, []) for p in (d.get("properties") or {})}
        needs = []
        for key, (tname, value) in keys.items():
            if value is None or value == "":
                continue  # withdrawn by a more specific type
            need, problem = _need(key, str(value), n.properties, declared)
            if problem is not None:
                if (tname, key) not in said:
                    said.add((tname, key))
                    where = ("node_types", tname, "metadata", key) if tname in own else (*_NODES, n.name, "type")
                    diags.append(smap.diag(where, f'type "{tname}": metadata {key}: {problem}'))
            elif need is not None:
                needs.append(need)
        n.host_needs = tuple(needs)
    _declared_disks(smap, nodes, diags)


def _need(key: str, value: str, props: dict[str, Any], declared: set[str]) -> tuple[HostNeed | None, str | None]:
    """The need a metadata key declares, or a sentence saying why it is none."""
    kind, _, name = key[len(PREFIX):].partition(".")
    if kind == JAVA and not name:
        if not value.strip().isdigit():
            return None, f"{value!r} is not a Java major version (such as 17)"
        return HostNeed(JAVA, version=int(value)), None
    if kind == MACHINE and not name:
        if value not in MACHINE_KINDS:
            return None, f"{value!r} is not a kind of host dodas knows ({', '.join(MACHINE_KINDS)})"
        return HostNeed(MACHINE, machine=value), None
    if kind in (PROGRAM, "program_as_root") and name:
        if not _NAME.match(name) or not _NAME.match(value):
            return None, "a program and a package are plain names (no paths or spaces)"
        return HostNeed(PROGRAM, program=name, package=value, as_root=kind != PROGRAM), None
    if kind == DISK and name:
        missing = [p for p in (name, value) if p not in declared]
        if missing:
            return None, f"the type has no property {', '.join(missing)}"
        size = _bytes(props.get(name))
        if size is None:
            return None, None  # no size (none given, or one known only at run time): nothing to check
        path = props.get(value)
        return HostNeed(DISK, size=size, size_text=str(props.get(name)), size_property=name,
                        path=path if isinstance(path, str) else "", path_property=value), None
    return None, f"not a host need dodas knows (it knows {_FORMS})"


def _bytes(value: Any) -> int | None:
    """A TOSCA size in bytes, or None when it is not one (tosca-parser said so already)."""
    from dodas.model.xrootd import size_bytes
    return size_bytes(value)


def _declared_disks(smap: SourceMap, nodes: dict[str, Node], diags: list[Diagnostic]) -> None:
    """A disk need larger than the disk its host declares (disk_size) can never be met."""
    from dodas.model.checks import _compute_of as compute_of

    for n in nodes.values():
        host = nodes.get(compute_of(nodes, n.name) or "")
        disk = host.compute.disk_mib if host is not None and host.compute else None
        for need in n.host_needs:
            if need.kind == DISK and disk and need.size > disk * 2**20:
                prop = (*_NODES, n.name, "properties", need.size_property)
                diags.append(smap.diag(prop if smap.exists(prop) else (*_NODES, n.name),
                                       f'node "{n.name}": {need.size_property} {need.size_text} is larger than the '
                                       f'disk of its host "{host.name}" '  # type: ignore[union-attr]
                                       f"(disk_size {disk} MiB)"))
