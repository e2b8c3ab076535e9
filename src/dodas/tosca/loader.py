"""Loading a TOSCA template: YAML with positions, shape checks, imports, inputs,
then tosca-parser for type resolution and validation.

The order matters: each step that fails stops before tosca-parser, which would
otherwise crash or bury the real problem under follow-on errors. tosca-parser is
used as it is shipped (its `local_defs` and `parsed_params` arguments, its
exception collector); nothing here patches it.
"""

from __future__ import annotations

import functools
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dodas import paths, settings
from dodas.errors import Diagnostic, TemplateError
from dodas.redact import redact
from dodas.tosca import diagnose, imports, inputs, lenient
from dodas.tosca.inputs import GivenInput
from dodas.yamlsource import SourceMap, load_yaml, read_source

VERSIONS = imports.VERSIONS
logging.getLogger("tosca").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class TemplateSource:
    """A template file read once: its text, its data and their positions. What
    an operation plans is this text, and what it stores is the same text (the
    file may change on disk meanwhile; the operation never reads it again)."""

    path: str
    text: str
    data: Any
    smap: SourceMap


def read_template(path: str) -> TemplateSource:
    """Read and parse a template file within the operator's limits."""
    return parse_template(read_source(path, "template", limits=settings.limits()), path)


def parse_template(text: str, path: str) -> TemplateSource:
    """Parse a template's text within the operator's limits. Duplicate keys are
    warnings (`smap.warnings`), as lenient as the tools templates were written for."""
    data, smap = load_yaml(text, path, limits=settings.limits(), lenient_duplicates=True)
    return TemplateSource(path, text, data, smap)


@dataclass
class LoadedTemplate:
    """A validated template: the raw data, its positions and tosca-parser's view."""

    path: str
    data: dict[str, Any]
    smap: SourceMap
    tosca: Any  # toscaparser.tosca_template.ToscaTemplate
    inputs: dict[str, Any]
    text: str
    #: inputs whose values are secrets (by name, type or `metadata: {sensitive: true}`)
    secret_inputs: frozenset[str] = frozenset()
    #: required inputs nobody gave, checked as unknowns of their type (validate only)
    unknown_inputs: frozenset[str] = frozenset()
    #: located warnings of the loading (a value read leniently as its declared type: tosca/lenient.py)
    warnings: tuple[Diagnostic, ...] = ()


def load(template: str | TemplateSource, given: dict[str, GivenInput] | None = None, *, offline: bool = False,
         unknown_inputs: bool = False) -> LoadedTemplate:
    """Load and validate a template file, or one already read (`read_template`);
    raise TemplateError with every problem found. With `unknown_inputs`
    (validate), a required input without a value is an unknown of its type
    instead of an error."""
    given = given or {}
    source = template if isinstance(template, TemplateSource) else read_template(template)
    path, text, data, smap = source.path, source.text, source.data, source.smap
    diags = check_shape(data, smap)
    if diags:
        raise TemplateError(diags)
    topo = data.get("topology_template") or {}
    # secret inputs are known, and their values registered, before anything checks them
    secrets = inputs.secret_inputs(topo.get("inputs"), data.get("data_types"))
    resolved = imports.resolve(data.get("imports"), Path(path).resolve().parent, smap,
                               offline=offline, repositories=data.get("repositories"))
    unknown: set[str] | None = set() if unknown_inputs else None
    given_warnings: list[Diagnostic] = []
    values, input_diags = inputs.check(topo.get("inputs"), given, smap, secrets=secrets, unknown=unknown,
                                       warnings=given_warnings)
    read = lenient.check(data, smap, _library_types(), sorted(resolved.seen), secrets)
    diags = resolved.diagnostics + input_diags
    if diags:
        raise TemplateError(diags + read.errors)
    if read.changes:  # values read as their declared type: the model reads them so, not as written
        data = pickle.loads(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        read.apply(data)
    # tosca-parser replaces function dicts by its own objects in place; give it a
    # copy so that `data` stays what the user wrote (pickle: plain YAML types only)
    tpl = pickle.loads(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    tpl["imports"] = _imports_but_library(resolved)
    _inline_library(tpl)
    _without_input_metadata(tpl)
    tosca = _parse(tpl, values, resolved.local_defs, smap, read.errors)
    if read.errors:  # what tosca-parser let through, this pass did not (a float given for an integer)
        raise TemplateError(read.errors)
    effective = {i.name: (values[i.name] if i.name in values else i.default)
                 for i in (getattr(tosca, "inputs", None) or [])}
    return LoadedTemplate(path, data, smap, tosca, effective, text, secrets, frozenset(unknown or ()),
                          tuple(Diagnostic(d.file, d.line, d.col, redact(d.message))
                                for d in [*given_warnings, *read.warnings]))


def _without_input_metadata(tpl: dict[str, Any]) -> None:
    """Input `metadata` (where `sensitive: true` marks a secret) is dodas's to
    read; tosca-parser's input schema has no such field and would refuse it."""
    decls = (tpl.get("topology_template") or {}).get("inputs")
    for decl in (decls.values() if isinstance(decls, dict) else ()):
        if isinstance(decl, dict):
            decl.pop("metadata", None)


def _imports_but_library(resolved: imports.ResolvedImports) -> list[Any]:
    """The imports to give tosca-parser: all but those of dodas's type library (by
    one of the INDIGO/DODAS URLs mapped to it), which is put in the template
    itself instead, whether imported or not, so that templates using only
    dodas's own types need no import line.

    Inlined rather than imported because tosca-parser reads an imported file with
    PyYAML on every load, twice: that was most of the time `validate`, `plan` and
    every server request spent on a small template. The library is read once per
    process instead (`typelib`)."""
    library = str(paths.TYPE_LIBRARY)
    entries = [e for e in resolved.imports or []
               if resolved.local_defs.get(imports.entry_ref(e) or "") != library]
    return entries


def _inline_library(tpl: dict[str, Any]) -> None:
    """The library's type definitions under the template's own, which win on a
    name both define (as an imported definition would lose to the template's).
    Only the types the template reaches (`typelib.reachable`), unless it imports
    other files, whose references to library types are not read here."""
    from dodas.tosca import typelib

    types = typelib.reachable(tpl) if not tpl.get("imports") else typelib.sections()
    for section, defs in types.items():
        own = tpl.get(section)
        tpl[section] = {**defs, **own} if isinstance(own, dict) else defs


@functools.lru_cache(maxsize=1)
def _library_types() -> dict[str, Any]:
    """Every type of the library (dodas's own and the published ones, merged), to
    read only (the leniency pass)."""
    from dodas.tosca import typelib

    return typelib.sections()


def _parse(tpl: dict[str, Any], values: dict[str, Any], local_defs: dict[str, str],
           smap: SourceMap, typed: list[Diagnostic]) -> Any:
    """tosca-parser's template; TemplateError, located, with its every problem.
    `typed` are the leniency pass's errors: placed where the value is, they
    replace tosca-parser's messages about values of the wrong type."""
    from toscaparser.common.exception import ExceptionCollector
    from toscaparser.tosca_template import ToscaTemplate

    try:
        return ToscaTemplate(parsed_params=values, a_file=False, yaml_dict_tpl=tpl,
                             local_defs=local_defs or None)
    except Exception as exc:  # noqa: BLE001 - the parser raises many kinds; all become diagnostics
        collected = list(ExceptionCollector.getExceptions())
        ExceptionCollector.stop()
        ExceptionCollector.clear()
        from toscaparser.common.exception import ValidationError
        if not collected and not isinstance(exc, ValidationError):
            # the parser crashed before collecting anything: say so, placed at the top
            collected.append(RuntimeError(f"the TOSCA parser could not process this template ({exc})"))
        if typed:
            collected = [e for e in collected if not lenient.PARSER_TYPE_MESSAGE.match(diagnose.text(e))]
        diags = typed + diagnose.to_diagnostics(_unique(collected), smap, known_types)
        # tosca-parser quotes values, a secret input's among them: masked here
        raise TemplateError([Diagnostic(d.file, d.line, d.col, redact(d.message)) for d in diags]) from None


def _unique(excs: list[BaseException]) -> list[BaseException]:
    seen, out = set(), []
    for e in excs:
        key = str(e)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


@functools.lru_cache(maxsize=1)
def known_types() -> list[str]:
    """Type names for "did you mean" hints: TOSCA's normative types and the library's."""
    from toscaparser.elements.entity_type import EntityType

    from dodas.tosca import typelib

    names = [k for k in EntityType.TOSCA_DEF if isinstance(k, str) and k.startswith("tosca.")]
    return names + typelib.names()


# -- shape checks ------------------------------------------------------------
_MAP, _LIST, _STR = dict, list, str


def check_shape(data: Any, smap: SourceMap) -> list[Diagnostic]:
    """Structural checks tosca-parser assumes and crashes without."""
    d: list[Diagnostic] = []
    if not isinstance(data, dict):
        return [smap.diag((), "a TOSCA template must be a YAML mapping")]
    version = data.get("tosca_definitions_version")
    if version is None:
        d.append(smap.diag((), 'missing "tosca_definitions_version" (for example tosca_simple_yaml_1_0)'))
    elif version not in VERSIONS:
        d.append(smap.diag(("tosca_definitions_version",),
                           f'unsupported tosca_definitions_version "{version}"; use one of {", ".join(VERSIONS)}'))
    for key in data:
        if key not in imports.SECTIONS:
            import difflib
            hint = difflib.get_close_matches(str(key), imports.SECTIONS, n=1)
            d.append(smap.diag((key,), f'unknown top-level section "{key}"' + (
                f'; did you mean "{hint[0]}"?' if hint else f"; TOSCA defines: {', '.join(imports.SECTIONS)}"),
                key=True))
    topo = data.get("topology_template")
    nothing = ("the template defines no nodes: add node_templates under topology_template, with at least one "
               "node (dodas deploys nodes)")
    if topo is None:
        if "topology_template" in data:  # present, but empty
            d.append(smap.diag(("topology_template",), nothing, key=True))
        elif not d:
            d.append(smap.diag((), 'the template has no "topology_template": ' + nothing.split(": ", 1)[1]))
        return d
    base = ("topology_template",)
    if not _expect(topo, _MAP, base, "topology_template", smap, d):
        return d
    if not topo.get("node_templates") and isinstance(topo.get("node_templates", {}), (dict, type(None))):
        d.append(smap.diag((*base, "node_templates") if "node_templates" in topo else base, nothing, key=True))
    for section in ("inputs", "outputs", "node_templates", "relationship_templates", "groups"):
        entries = topo.get(section)
        if entries is None:
            continue
        if not _expect(entries, _MAP, (*base, section), section, smap, d):
            continue
        for name, body in entries.items():
            where = (*base, section, name)
            if section == "outputs" and isinstance(body, dict) and "value" not in body:
                d.append(smap.diag(where, f'output "{name}" has no "value"', key=True))
            if not _expect(body, _MAP, where, f'{section[:-1]} "{name}"', smap, d):
                continue
            if section == "node_templates":
                _check_node(name, body, where, smap, d)
    policies = topo.get("policies")
    if policies is not None and _expect(policies, _LIST, (*base, "policies"), "policies", smap, d):
        for i, entry in enumerate(policies):
            _check_policy(entry, (*base, "policies", i), smap, d)
    return d


def _check_policy(entry: Any, where: tuple, smap: SourceMap, d: list[Diagnostic]) -> None:
    """A policy is one `name: {type, targets, properties}` entry (tosca-parser reads
    anything else as a string of unknown properties)."""
    if not (isinstance(entry, dict) and len(entry) == 1):
        d.append(smap.diag(where, "each policy must be one \"name: {type: ..., targets: [...]}\" entry"))
        return
    (name, body), = entry.items()
    if not _expect(body, _MAP, (*where, name), f'policy "{name}"', smap, d):
        return
    if not isinstance(body.get("type"), str):
        d.append(smap.diag((*where, name), f'policy "{name}" needs a "type" naming a policy type', key=True))
    for fld, kind in (("properties", _MAP), ("targets", _LIST)):
        if body.get(fld) is not None:
            _expect(body[fld], kind, (*where, name, fld), f'policy "{name}" {fld}', smap, d)


def _check_node(name: str, body: dict, where: tuple, smap: SourceMap, d: list[Diagnostic]) -> None:
    if not isinstance(body.get("type"), str):
        d.append(smap.diag(where, f'node "{name}" needs a "type" naming a node type', key=True))
    for fld, kind in (("properties", _MAP), ("capabilities", _MAP), ("interfaces", _MAP),
                      ("requirements", _LIST), ("attributes", _MAP), ("artifacts", _MAP)):
        if fld in body and body[fld] is not None:
            _expect(body[fld], kind, (*where, fld), f'node "{name}" {fld}', smap, d)
    for i, req in enumerate(body.get("requirements") or [] if isinstance(body.get("requirements"), list) else []):
        ok = isinstance(req, dict) and len(req) == 1 and isinstance(next(iter(req.values())), (str, dict))
        if not ok:
            d.append(smap.diag((*where, "requirements", i),
                               f'node "{name}": each requirement must be one "name: target" entry'))
    caps = body.get("capabilities")
    if isinstance(caps, dict):
        for cname, cap in caps.items():
            cwhere = (*where, "capabilities", cname)
            if _expect(cap, _MAP, cwhere, f'capability "{cname}" of node "{name}"', smap, d):
                if cap.get("properties") is not None:
                    _expect(cap["properties"], _MAP, (*cwhere, "properties"),
                            f'properties of capability "{cname}"', smap, d)


def _expect(value: Any, kind: type, where: tuple, what: str, smap: SourceMap, d: list[Diagnostic]) -> bool:
    if isinstance(value, kind):
        return True
    noun = {dict: "a mapping", list: "a list", str: "a string"}[kind]
    d.append(smap.diag(where, f"{what} must be {noun}"))
    return False
