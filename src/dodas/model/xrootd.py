"""Checks of dodas's XRootD nodes (origin, redirector, XCache) that can be made
before anything runs, located at the property at fault: what XRootD would
refuse at start (watermarks, RAM) or what could never work (a cache with no
origin). Whether an origin answers is known only at start; the cache's start
says so, naming it. The disk a cache needs is its type's declared host need
(model/hostneeds.py), checked there against its host's disk_size.
"""

from __future__ import annotations

import re
from typing import Any

from dodas.errors import Diagnostic
from dodas.model.deployment import Node
from dodas.yamlsource import SourceMap

CACHE = "tosca.nodes.dodas.XRootD.Cache"
_NODES = ("topology_template", "node_templates")
_ORIGIN_URL = re.compile(r"^roots?://(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{1,5}))?/*$")


def size_bytes(value: Any) -> int | None:
    """A TOSCA size in bytes, or None when it is not one (tosca-parser said so already)."""
    if value is None or value == "":
        return None
    from toscaparser.elements.scalarunit import ScalarUnit_Size

    try:
        return int(round(ScalarUnit_Size(value).get_num_from_scalar_unit("B")))
    except Exception:  # noqa: BLE001 - a malformed size is tosca-parser's located error
        return None


def origin_url(n: Node) -> str:
    """A cache's origin outside the deployment: origin_url, or INDIGO's
    origin_host and origin_xrd_port (tosca.nodes.indigo.XCache)."""
    if n.properties.get("origin_url"):
        return str(n.properties["origin_url"])
    host = n.properties.get("origin_host")
    return f"root://{host}:{n.properties.get('origin_xrd_port') or 1094}" if host else ""


def caches(smap: SourceMap, nodes: dict[str, Node], diags: list[Diagnostic]) -> None:
    """Every XCache has one origin and watermarks XRootD accepts."""
    for n in nodes.values():
        if not n.derives_from(CACHE):
            continue
        base = (*_NODES, n.name, "properties")
        def where(prop: str) -> tuple:
            """The property as written; INDIGO's XCache writes its origin as origin_host."""
            names = (prop, "origin_host") if prop == "origin_url" else (prop,)
            return next(((*base, p) for p in names if smap.exists((*base, p))), (*_NODES, n.name))
        url = origin_url(n)
        has_req = any(r.name == "origin" and r.target in nodes for r in n.requirements)
        if url and has_req:
            diags.append(smap.diag(where("origin_url"), f'node "{n.name}": both an origin requirement and '
                                   "origin_url: a cache has one origin; keep one of them"))
        elif not url and not has_req:
            diags.append(smap.diag((*_NODES, n.name), f'node "{n.name}" is an XCache with no origin: add '
                                   '"- origin: NODE" (a dodas.XRootD.Origin or Redirector) to its requirements, '
                                   "or origin_url: root://HOST:PORT for one outside the deployment", key=True))
        elif url:
            m = _ORIGIN_URL.match(str(url))
            if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
                diags.append(smap.diag(where("origin_url"), f'node "{n.name}": origin_url {url!r} is not '
                                       "root://HOST[:PORT] or roots:// (the port between 1 and 65535)"))
        low, high = n.properties.get("low_watermark"), n.properties.get("high_watermark")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
            diags.append(smap.diag(where("low_watermark"), f'node "{n.name}": low_watermark {low} is not below '
                                   f"high_watermark {high}: the cache is purged from the high one down to the "
                                   "low one"))
        size = size_bytes(n.properties.get("cache_size"))
        block = size_bytes(n.properties.get("block_size")) or 2**20
        if size is not None and isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high \
                and size * (high - low) < block:
            diags.append(smap.diag(where("cache_size"), f'node "{n.name}": cache_size {n.properties["cache_size"]}'
                                   f" leaves less than one block ({n.properties.get('block_size')}) between its "
                                   "watermarks: make it larger or the watermarks further apart"))

