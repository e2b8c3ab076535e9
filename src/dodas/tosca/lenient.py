"""Values read as their declared type, as leniently as the INDIGO orchestrator
read them, and saying so where they are written.

tosca-parser is stricter than the tools INDIGO and DODAS templates were written
for: it refuses `num_cpus: 1` where a float is declared, `version: 16.04` or
`default: true` where a string is, and places those messages nowhere (it quotes
a value, not where the value is). This pass runs before it, over a template's
input defaults and the properties of its nodes, their capabilities and its
policies, each against the type that declares it:

* an integer where a float is expected is a float, silently (a number is one);
* a boolean, number or date where a string is expected is the string as written
  in the file (`16.04` stays "16.04", `true` is "true"), with a located warning;
* a number written as a string (`"3"`) where a number is expected is that
  number, with a located warning;
* a value that no reading makes fit (`"three"` for an integer) is a located
  error, replacing tosca-parser's unplaced one.

Warnings are the model's warnings (shown, never fatal); `--strict` refuses
them. Nothing else is changed: lists and maps are followed into their
`entry_schema`, data types into their properties, and what this pass does not
know (an unknown type, a function) is left to tosca-parser.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from dodas.errors import Diagnostic
from dodas.tosca.diagnose import describe
from dodas.tosca.inputs import SECRET_NAME
from dodas.tosca.reading import NAMES, SCALARS, given_as, read_as, warning, written_as
from dodas.yamlsource import SourceMap

_TOPO = "topology_template"
_SECTIONS = ("node_types", "capability_types", "data_types", "policy_types")

#: tosca-parser's own message for a value of the wrong primitive type (replaced by this pass's)
PARSER_TYPE_MESSAGE = re.compile(r'^"(.*)" is not an? (string|integer|float|numeric|boolean|list|map)\.$', re.S)
_FUNCTIONS = {"get_input", "get_property", "get_attribute", "get_operation_output", "concat", "token",
              "get_nodes_of_type", "get_artifact"}


@dataclass
class Leniency:
    """What the pass found: values to replace (YAML path -> value), warnings and errors."""

    changes: dict[tuple, Any] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)

    def apply(self, data: Any) -> None:
        """Replace each value in `data` (a copy: the caller's own)."""
        for path, value in self.changes.items():
            cur = data
            for item in path[:-1]:
                cur = cur[item]
            cur[path[-1]] = value


class Types:
    """Type definitions by name: TOSCA's normative ones, the library's, the
    imported files' and the template's own (a later source wins, as in tosca-parser)."""

    def __init__(self, sources: list[dict[str, Any]]) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        for source in sources:
            for section in _SECTIONS:
                types = source.get(section)
                if isinstance(types, dict):
                    self.defs.update({k: v for k, v in types.items() if isinstance(v, dict)})
        self._props: dict[str, dict[str, Any]] = {}
        self._caps: dict[str, dict[str, Any]] = {}

    def chain(self, name: Any) -> list[dict[str, Any]]:
        out, seen = [], set()
        while isinstance(name, str) and name in self.defs and name not in seen:
            seen.add(name)
            out.append(self.defs[name])
            name = self.defs[name].get("derived_from")
        return out

    def properties(self, name: Any) -> dict[str, Any]:
        """Property definitions of a type and its ancestors (the nearest wins)."""
        if not isinstance(name, str):
            return {}
        if name not in self._props:
            out: dict[str, Any] = {}
            for tdef in reversed(self.chain(name)):
                props = tdef.get("properties")
                if isinstance(props, dict):
                    out.update({k: v for k, v in props.items() if isinstance(v, dict)})
            self._props[name] = out
        return self._props[name]

    def capability(self, node_type: Any, cap: str) -> dict[str, Any]:
        """Property definitions of capability `cap` of a node type."""
        key = f"{node_type}\0{cap}"
        if key not in self._caps:
            out: dict[str, Any] = {}
            for tdef in self.chain(node_type):
                cdef = (tdef.get("capabilities") or {}).get(cap) if isinstance(tdef.get("capabilities"), dict) \
                    else None
                if isinstance(cdef, dict):
                    out = {**self.properties(cdef.get("type")), **{k: v for k, v in (
                        cdef.get("properties") or {}).items() if isinstance(v, dict)}}
                    break
            self._caps[key] = out
        return self._caps[key]

    def primitive(self, name: Any) -> Any:
        """A data type derived from a primitive one (`derived_from: string`) is read as it."""
        for tdef in self.chain(name):
            base = tdef.get("derived_from")
            if base in NAMES:
                return base
        return name


def check(data: dict[str, Any], smap: SourceMap, library: dict[str, Any], imported: list[str],
          secrets: frozenset[str] = frozenset()) -> Leniency:
    """The leniency pass over a template's data (not changed: see `Leniency.apply`).
    `imported` are the files the template imports (types a property may be
    declared by); `secrets` the inputs whose defaults no message may quote."""
    from toscaparser.elements.entity_type import EntityType

    sources = [EntityType.TOSCA_DEF, library, *(_imported_types(p) for p in imported), data]
    c = _Checker(Types(sources), smap, secrets)
    topo = data.get(_TOPO) if isinstance(data.get(_TOPO), dict) else {}
    inputs = topo.get("inputs")
    for name, decl in (inputs.items() if isinstance(inputs, dict) else ()):
        if isinstance(decl, dict) and "default" in decl:
            c.value(decl.get("type", "string"), decl.get("entry_schema"), decl["default"],
                    (_TOPO, "inputs", name, "default"))
    nodes = topo.get("node_templates")
    for name, body in (nodes.items() if isinstance(nodes, dict) else ()):
        if not isinstance(body, dict):
            continue
        base = (_TOPO, "node_templates", name)
        c.properties(c.types.properties(body.get("type")), body.get("properties"), (*base, "properties"))
        caps = body.get("capabilities")
        for cname, cap in (caps.items() if isinstance(caps, dict) else ()):
            if isinstance(cap, dict):
                c.properties(c.types.capability(body.get("type"), cname), cap.get("properties"),
                             (*base, "capabilities", cname, "properties"))
    policies = topo.get("policies")
    for i, entry in enumerate(policies if isinstance(policies, list) else ()):
        if isinstance(entry, dict) and len(entry) == 1:
            (name, body), = entry.items()
            if isinstance(body, dict):
                c.properties(c.types.properties(body.get("type")), body.get("properties"),
                             (_TOPO, "policies", i, name, "properties"))
    return c.out


@functools.lru_cache(maxsize=64)
def _imported_types_at(path: str, mtime: float) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=loader)  # already checked by imports.resolve
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return {k: v for k, v in doc.items() if k in _SECTIONS} if isinstance(doc, dict) else {}


def _imported_types(path: str) -> dict[str, Any]:
    try:
        return _imported_types_at(path, os.stat(path).st_mtime)
    except OSError:
        return {}


class _Checker:
    def __init__(self, types: Types, smap: SourceMap, secrets: frozenset[str]) -> None:
        self.types, self.smap, self.secrets, self.out = types, smap, secrets, Leniency()

    def properties(self, defs: dict[str, Any], given: Any, base: tuple) -> None:
        for pname, value in (given.items() if isinstance(given, dict) else ()):
            pdef = defs.get(pname)
            if isinstance(pdef, dict):
                self.value(pdef.get("type"), pdef.get("entry_schema"), value, (*base, pname))

    def value(self, typ: Any, entry: Any, value: Any, path: tuple, depth: int = 0) -> None:
        if value is None or depth > 8 or _is_function(value):
            return
        typ = self.types.primitive(typ)
        if typ in SCALARS:
            self._scalar(typ, value, path)
        elif typ in ("list", "map") and not isinstance(value, list if typ == "list" else dict):
            got = "" if self._secret(path) else f", got {given_as(value)}"
            self.out.errors.append(self.smap.diag(path, f"{_where(path)}must be {NAMES[typ]}{got}"))
        elif typ in ("list", "map") and isinstance(entry, (dict, str)):
            etype = entry.get("type") if isinstance(entry, dict) else entry
            eentry = entry.get("entry_schema") if isinstance(entry, dict) else None
            items = enumerate(value) if typ == "list" and isinstance(value, list) else (
                value.items() if typ == "map" and isinstance(value, dict) else ())
            for k, v in items:
                self.value(etype, eentry, v, (*path, k), depth + 1)
        elif isinstance(typ, str) and isinstance(value, dict) and typ in self.types.defs:
            for k, v in value.items():
                pdef = self.types.properties(typ).get(k)
                if isinstance(pdef, dict):
                    self.value(pdef.get("type"), pdef.get("entry_schema"), v, (*path, k), depth + 1)

    def _scalar(self, typ: str, value: Any, path: tuple) -> None:
        read, how = read_as(typ, value, lambda: self._written(path, value))
        if how == "same":
            return
        if how == "silent":
            self.out.changes[path] = read
            return
        where, secret = _where(path), self._secret(path)
        given = given_as(value) if isinstance(value, (str, list, dict)) else self._written(path, value)
        if how == "error":
            got = "" if secret else f", got {given}"
            self.out.errors.append(self.smap.diag(path, f"{where}must be {NAMES[typ]}{got}"))
            return
        self.out.changes[path] = read
        self.out.warnings.append(self.smap.diag(path, warning(where, value, given, typ, read, secret)))

    def _secret(self, path: tuple) -> bool:
        """Whether the value is a secret's (by a name on its path, or a secret input's default)."""
        return any(SECRET_NAME.search(str(p)) for p in path[2:]) or (
            len(path) > 2 and path[1] == "inputs" and path[2] in self.secrets)

    def _written(self, path: tuple, value: Any) -> str:
        """A scalar as the file writes it: `16.04` is "16.04", not Python's 16.04."""
        return written_as(self.smap.written(path), value)


def _where(path: tuple) -> str:
    """'node "x" property "y" entry "k": ' (diagnose.describe, with the entry of a list or map)."""
    out = describe(list(path))
    for i, item in enumerate(path[:-1]):
        if item in ("properties", "inputs") and i + 2 < len(path) and path[i + 2] != "default":
            entries = "".join(f"[{p}]" for p in path[i + 2:])
            return f"{out[:-2]} entry {entries}: " if out else f"{entries}: "
    return out


def _is_function(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _FUNCTIONS
