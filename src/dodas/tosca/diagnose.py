"""Turning tosca-parser's collected exceptions into located diagnostics.

tosca-parser quotes the names involved ("template "x" contains unknown field "y"")
but gives no positions; each rule here recognises one message shape, rewrites it
in the user's terms and finds its place in the YAML. Anything unrecognised is
placed by searching its quoted names, so no message is ever dropped or unplaced,
except the follow-on noise of a node whose type is already reported unknown.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

from dodas.errors import Diagnostic
from dodas.yamlsource import SourceMap

NODES = ("topology_template", "node_templates")
POLICIES = ("topology_template", "policies")
_QUOTED = re.compile(r'"([^"]*)"|\'([^\']*)\'')

Rule = tuple[re.Pattern[str], Callable[[re.Match[str], SourceMap], Diagnostic | None]]


def _node_key(name: str, *rest: str) -> tuple[str, ...]:
    return (*NODES, name, *rest)


def _policy_path(name: str, smap: SourceMap) -> tuple | None:
    """The YAML path of the policy called `name` (policies are a list of one-key maps)."""
    found = smap.search_path([name], within=POLICIES)
    if found is None:
        return None
    _pos, path = found
    return tuple(path[:4]) if len(path) >= 4 else None


def _unknown_field(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    section, node, fld = m.group(1), m.group(2), m.group(3)
    noun = {"properties": "property", "requirements": "requirement",
            "capabilities": "capability", "interfaces": "interface",
            "attributes": "attribute"}.get(section, f"field in {section}")
    policy = None if smap.exists(_node_key(node)) else _policy_path(node, smap)
    if policy is not None:
        return smap.diag((*policy, section, fld), f'policy "{node}": unknown {noun} "{fld}" for its type', key=True)
    path = _node_key(node, section, fld)
    if not smap.exists(path):
        pos = smap.search([node, fld], within=("topology_template",))
        if pos:
            return Diagnostic(smap.file, *pos, f'node "{node}": unknown {noun} "{fld}"')
    return smap.diag(path, f'node "{node}": unknown {noun} "{fld}" for its type', key=True)


def _missing_target(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    target, source = m.group(1), m.group(2)
    pos = smap.search([target], within=_node_key(source, "requirements")) or \
        smap.position(_node_key(source), key=True)
    return Diagnostic(smap.file, *pos, f'node "{source}" has a requirement on node "{target}", '
                      "which the template does not define")


def _missing_node(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    target = m.group(1)
    pos = smap.search([target], within=("topology_template",)) or (1, 1)
    return Diagnostic(smap.file, *pos, f'reference to node "{target}", which the template does not define')


def _unknown_input(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    name = m.group(1)
    pos = smap.search(["get_input", name], within=("topology_template",)) or (1, 1)
    return Diagnostic(smap.file, *pos, f'get_input refers to input "{name}", which the template does not declare')


def _node_field(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    node, fld = m.group(1), m.group(2)
    return smap.diag(_node_key(node, fld), f'node "{node}": unknown field "{fld}"', key=True)


def _missing_field(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    what, fld = m.group(1), m.group(2)
    pm = re.match(r'^"properties" of template "([^"]+)"$', what)
    policy = _policy_path(pm.group(1), smap) if pm and not smap.exists(_node_key(pm.group(1))) else None
    if policy is not None:
        names = ", ".join(f'"{n}"' for n in re.findall(r"'([^']+)'", fld)) or f'"{fld}"'
        where = (*policy, "properties") if smap.exists((*policy, "properties")) else policy
        return smap.diag(where, f'policy "{pm.group(1)}" is missing required property {names}', key=True)
    names = [a or b for a, b in _QUOTED.findall(what)]
    pos = smap.search(names, within=("topology_template",)) if names else None
    return Diagnostic(smap.file, *(pos or (1, 1)), f'{what} is missing required field "{fld}"')


def _bad_attr_ref(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    name, source, target = m.group(1), m.group(2), m.group(3)
    pos = smap.search([source, name], within=NODES) or smap.search([name]) or (1, 1)
    return Diagnostic(smap.file, *pos, f'node "{source}": node "{target}" has no attribute or capability "{name}"')


def _missing_attribute(m: re.Match[str], smap: SourceMap) -> Diagnostic | None:
    """At the get_attribute that names it, not at the node it is asked of."""
    attr, node = m.group(1), m.group(2)
    found = smap.search_path(["get_attribute", attr], within=("topology_template",))
    if found is None:
        return None
    pos, path = found
    return Diagnostic(smap.file, *pos, f'{describe(path)}get_attribute: node "{node}" has no attribute "{attr}"')


def _occurrences(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    """tosca-parser's "wrong number of occurrences" is, in templates, nearly always a
    required requirement that is missing: say which one to add, and where."""
    req, node = m.group(1), m.group(2)
    where = _node_key(node, "requirements")
    has_list = smap.search(["requirements"], within=_node_key(node)) is not None
    pos = smap.position(where, key=True) if has_list else smap.position(_node_key(node), key=True)
    given = smap.search([req], within=where) if has_list else None
    if given:
        return Diagnostic(smap.file, *given, f'node "{node}": requirement "{req}" is given more times than its '
                          "type allows")
    return Diagnostic(smap.file, *pos, f'node "{node}": missing requirement "{req}": add "- {req}: <node>" to its '
                      "requirements (its type requires it)")


def _missing_member(m: re.Match[str], smap: SourceMap) -> Diagnostic:
    """A policy's (or group's) target that is no node: at the target's name."""
    target = m.group(1)
    found = smap.search_path(["targets", target], within=POLICIES) or smap.search_path([target])
    pos, path = found if found else ((1, 1), [])
    return Diagnostic(smap.file, *pos, f'{describe(path)}target "{target}" is not a node of the template')


def _property_value(m: re.Match[str], smap: SourceMap) -> Diagnostic | None:
    """tosca-parser's constraint messages quote the value and the property: at the
    property with that value (a bare search for the value finds any equal scalar)."""
    value, prop = m.group(1), m.group(2)
    found = smap.search_path([prop, value], within=("topology_template",))
    if found is None:
        return None
    pos, path = found
    return Diagnostic(smap.file, *pos, f"{describe(path)}{m.group(0)}")


RULES: list[Rule] = [
    (re.compile(r'^"?Target member "([^"]+)" is not found in node_templates'), _missing_member),
    (re.compile(r'^The value "([^"]*)" of property "([^"]+)" .*$'), _property_value),
    (re.compile(r'^Relationship "([^"]+)" in template "([^"]+)" has a wrong number of occurrences'), _occurrences),
    (re.compile(r'^Attribute "([^"]+)" was not found in node template "([^"]+)"'), _missing_attribute),
    (re.compile(r'^Requirement/Capability "([^"]+)" referenced from node template "([^"]+)" was not found '
                r'in node template "([^"]+)"'), _bad_attr_ref),
    (re.compile(r'^"(\w+)" of template "([^"]+)" contains unknown field "([^"]+)"'), _unknown_field),
    (re.compile(r'^Node template "([^"]+)" contains unknown field "([^"]+)"'), _node_field),
    (re.compile(r'^Node template "([^"]+)" was not found in "([^"]+)"'), _missing_target),
    (re.compile(r'^Node template "([^"]+)" was not found'), _missing_node),
    (re.compile(r'^Unknown input "([^"]+)"'), _unknown_input),
    (re.compile(r'^(.*) is missing required field "([^"]+)"'), _missing_field),
]

_NOISE = ("parent_req is None",)
_YAML_SPELLING = {"True": "true", "False": "false", "None": "null"}
_INVALID_TYPE = re.compile(r'^Type "([^"]+)" is not a valid type')


def to_diagnostics(exceptions: Iterable[BaseException], smap: SourceMap,
                   known_types: Callable[[], list[str]]) -> list[Diagnostic]:
    msgs = [text(e) for e in exceptions]
    msgs = [m for m in msgs if m and not any(n in m for n in _NOISE)]
    bad_types = {mt.group(1) for m in msgs if (mt := _INVALID_TYPE.match(m))}
    bad_nodes = _nodes_of_types(smap, bad_types)
    out: list[Diagnostic] = []
    for msg in msgs:
        mt = _INVALID_TYPE.match(msg)
        if mt:
            out.append(_invalid_type(mt.group(1), smap, known_types))
            continue
        if bad_nodes and any(f'template "{n}"' in msg for n in bad_nodes):
            continue  # follow-on errors of a node whose type is already reported
        out.append(_one(msg, smap))
    return out


def text(exc: BaseException) -> str:
    """An exception's message as tosca-parser means it."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text.replace(" Refer to the definition to verify valid values.", "").strip()


def _one(msg: str, smap: SourceMap) -> Diagnostic:
    for pattern, build in RULES:
        m = pattern.match(msg)
        if m:
            d = build(m, smap)
            if d is not None:
                return d
    # Python's spelling of a YAML value ("True", "None") is not what the file says
    names = [_YAML_SPELLING.get(n, n) for n in (a or b for a, b in _QUOTED.findall(msg))]
    for k in range(len(names), 0, -1):
        found = smap.search_path(names[:k]) or smap.search_path(names[k - 1:k])
        if found:
            pos, path = found
            return Diagnostic(smap.file, *pos, f"{describe(path)}{msg}")
    return Diagnostic(smap.file, 1, 1, msg)


def describe(path: list) -> str:
    """'node "x" property "y": ' for a YAML path, so a message says whose value it is."""
    p = [str(x) for x in path]
    if len(p) >= 3 and p[:2] == list(NODES):
        out = f'node "{p[2]}"'
        rest = p[3:]
        if len(rest) >= 4 and rest[0] == "capabilities" and rest[2] == "properties":
            out += f' capability "{rest[1]}" property "{rest[3]}"'
        elif len(rest) >= 2 and rest[0] == "properties":
            out += f' property "{rest[1]}"'
        return out + ": "
    if len(p) >= 4 and p[:2] == list(POLICIES):
        rest = p[4:]
        return f'policy "{p[3]}"' + (f' property "{rest[1]}"' if len(rest) >= 2 and rest[0] == "properties"
                                     else "") + ": "
    if len(p) >= 3 and p[:2] == ["topology_template", "inputs"]:
        return f'input "{p[2]}": '
    if len(p) >= 3 and p[:2] == ["topology_template", "outputs"]:
        return f'output "{p[2]}": '
    return ""


def _invalid_type(name: str, smap: SourceMap, known_types: Callable[[], list[str]]) -> Diagnostic:
    pos = smap.search(["type", name], within=NODES) or smap.search([name]) or (1, 1)
    close = difflib.get_close_matches(name, known_types(), n=1, cutoff=0.75)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return Diagnostic(smap.file, *pos, f'unknown type "{name}"{hint}')


def _nodes_of_types(smap: SourceMap, types: set[str]) -> set[str]:
    import yaml

    if not types:
        return set()
    _, nodes = smap._walk(NODES)  # a private helper of this package (tosca/)
    found = set()
    if isinstance(nodes, yaml.MappingNode):
        for k, v in nodes.value:
            if isinstance(v, yaml.MappingNode):
                for fk, fv in v.value:
                    if getattr(fk, "value", None) == "type" and getattr(fv, "value", None) in types:
                        found.add(k.value)
    return found
