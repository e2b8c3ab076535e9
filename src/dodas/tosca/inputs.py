"""Deployment inputs: `-i key=value`, `--inputs FILE.yaml`, checked before parsing.

dodas checks inputs itself, before tosca-parser, so that a wrong value is reported
where the user wrote it (the `-i` argument or the inputs file's line) and next to
where the template declares it, and so that values reach tosca-parser typed.

Secret inputs (by name, by type, or marked `metadata: {sensitive: true}`) are
registered with the redactor before anything looks at them, and no message about
them ever shows their value.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from dodas import redact, settings
from dodas.errors import Diagnostic, TemplateError
from dodas.yamlsource import SourceError, SourceMap, load_yaml, read_yaml

CLI = "<command line>"
#: names (of inputs, properties, outputs, types) that say their value is a secret
SECRET_NAME = re.compile(r"(password|passwd|token|secret|private_key|credential|kubeconfig)", re.I)
#: fields of a secret mapping (a tosca.datatypes.Credential) that say what it is, not what it hides
_NOT_SECRET_FIELDS = {"user", "protocol", "token_type"}


@dataclass(frozen=True)
class GivenInput:
    """A value the user supplied, with where it came from."""

    value: Any
    file: str
    line: int
    col: int
    from_cli: bool = False
    #: a scalar as its file writes it (`1.10`), for a string input given a number (tosca/lenient.py)
    written: str | None = None

    def diag(self, message: str) -> Diagnostic:
        return Diagnostic(self.file, self.line, self.col, message)


def parse_cli_pairs(pairs: list[str]) -> tuple[dict[str, GivenInput], list[Diagnostic]]:
    """`key=value` strings; later ones win, as with repeated command-line flags."""
    given: dict[str, GivenInput] = {}
    diags: list[Diagnostic] = []
    for n, pair in enumerate(pairs, start=1):
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:  # the argument is not quoted: it may be a secret typed without its key
            diags.append(Diagnostic(CLI, 1, n, "-i: expected KEY=VALUE"))
            continue
        given[key] = GivenInput(raw, CLI, 1, n, from_cli=True)
    return given, diags


def read_inputs_file(path: str) -> dict[str, GivenInput]:
    data, smap = read_yaml(path, "inputs file", limits=settings.limits())
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TemplateError([smap.diag((), "an inputs file must be a mapping of input names to values")])
    out = {}
    for key, value in data.items():
        line, col = smap.position((str(key),))
        out[str(key)] = GivenInput(value, path, line, col, written=smap.written((str(key),)))
    return out


def secret_inputs(decls: Any, data_types: Any = None) -> frozenset[str]:
    """The declared inputs whose values are secrets: by name (`db_password`), by
    type (`tosca.datatypes.Credential`, or a type of the template's own
    `data_types` that is or derives from one whose name says so, also as the
    entries of a list or map) or marked `metadata: {sensitive: true}`."""
    if not isinstance(decls, dict):
        return frozenset()
    out = set()
    for name, decl in decls.items():
        if SECRET_NAME.search(str(name)):
            out.add(name)
            continue
        if not isinstance(decl, dict):
            continue
        meta = decl.get("metadata")
        if isinstance(meta, dict) and str(meta.get("sensitive", "")).lower() == "true":
            out.add(name)
            continue
        entry = decl.get("entry_schema")
        types = [decl.get("type"), entry.get("type") if isinstance(entry, dict) else entry]
        if any(_secret_type(t, data_types) for t in types):
            out.add(name)
    return frozenset(out)


def _secret_type(typ: Any, data_types: Any) -> bool:
    seen: set[str] = set()
    while isinstance(typ, str) and typ not in seen:
        if SECRET_NAME.search(typ):
            return True
        seen.add(typ)
        tdef = data_types.get(typ) if isinstance(data_types, dict) else None
        typ = tdef.get("derived_from") if isinstance(tdef, dict) else None
    return False


def register_secrets(value: Any) -> None:
    """Hand a secret value to the redactor: a string, or the string leaves of a
    list or mapping (but not a credential's user name or protocol: masking those
    would hide harmless words everywhere)."""
    todo, seen = [value], set()
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            redact.register(v)
        elif isinstance(v, (dict, list)) and id(v) not in seen:  # aliases share a value: once is enough
            seen.add(id(v))
            todo.extend((x for k, x in v.items() if str(k) not in _NOT_SECRET_FIELDS) if isinstance(v, dict) else v)


def check(decls: Any, given: dict[str, GivenInput], smap: SourceMap,
          base: tuple = ("topology_template", "inputs"),
          secrets: frozenset[str] = frozenset(), unknown: set[str] | None = None,
          warnings: list[Diagnostic] | None = None) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Typed values for every given input; diagnostics for every bad one.

    Inputs that are not given keep their template default (tosca-parser applies
    it); a declared input with neither default nor value is an error unless it
    says `required: false`, or unless `unknown` is given (validate): then it gets a
    stand-in of its type (unknowns.py) and its name is added to `unknown`. The
    values of `secrets` are registered with the redactor first and never appear in
    a message."""
    decls = decls if isinstance(decls, dict) else {}
    values: dict[str, Any] = {}
    diags: list[Diagnostic] = []
    for name in secrets:
        if name in given:
            register_secrets(given[name].value)
    for name, g in given.items():
        if name not in decls:
            hint = difflib.get_close_matches(name, list(decls), n=1)
            extra = f'; did you mean "{hint[0]}"?' if hint else (
                f"; it declares: {', '.join(sorted(decls))}" if decls else "; it declares none")
            diags.append(g.diag(f'unknown input "{name}": the template declares no such input{extra}'))
            continue
        decl = decls[name] if isinstance(decls[name], dict) else {}
        where = smap.position((*base, name), key=True)
        secret = name in secrets
        g = _lenient(name, decl.get("type", "string"), g, secret, warnings)
        value, problem = coerce(decl.get("type", "string"), g.value, from_text=g.from_cli,
                                entry_schema=decl.get("entry_schema"), secret=secret)
        if secret and problem is None:
            register_secrets(value)
        if problem is None:
            problem = violated_constraint(decl, value, secret=secret)
        if problem is not None:
            diags.append(g.diag(f'input "{name}" {problem} (declared at {smap.file}:{where[0]}:{where[1]})'))
        else:
            values[name] = value
    for name, decl in decls.items():
        if name in given or not isinstance(decl, dict):
            continue
        if "default" not in decl and decl.get("required", True) is not False:
            if unknown is not None:
                from dodas.tosca.unknowns import stand_in
                values[name] = stand_in(name, decl)
                unknown.add(name)
                continue
            diags.append(smap.diag((*base, name), f'missing required input "{name}": '
                                   f"give it with -i {name}=VALUE or in an --inputs file", key=True))
    return values, diags


def _lenient(name: str, typ: Any, g: GivenInput, secret: bool, warnings: list[Diagnostic] | None) -> GivenInput:
    """A given value read as its declared type as the template's own values are
    (tosca/reading.py): a number or boolean for a string, a number written as a
    string for a number, with a warning at the value (in `warnings`)."""
    from dataclasses import replace

    from dodas.tosca import reading

    if warnings is None or typ not in ("string", "integer", "float") or (g.from_cli and typ == "string"):
        return g
    value = g.value
    if g.from_cli and isinstance(value, str):  # -i text: YAML first, as `coerce` reads it
        return g
    read, how = reading.read_as(typ, value, lambda: reading.written_as(g.written, value))
    if how not in ("warn", "silent"):
        return g
    if how == "warn":
        given = reading.given_as(value) if isinstance(value, str) else reading.written_as(g.written, value)
        warnings.append(g.diag(reading.warning(f'input "{name}": ', value, given, typ, read, secret)))
    return replace(g, value=read, from_cli=False)


_INT_NAMES = {"integer": "an integer", "float": "a number", "boolean": "true or false",
              "list": "a list", "map": "a mapping", "string": "a string"}


#: said instead of a secret input's value
NOT_SHOWN = "(its value is not shown: the input is a secret)"


def coerce(typ: str, value: Any, *, from_text: bool = False,
           entry_schema: Any = None, secret: bool = False) -> tuple[Any, str | None]:
    """(typed value, None) or (None, 'must be ...'). Text from `-i` is read as YAML
    (within dodas's YAML limits) for non-string types, so `-i n=3` is the integer 3
    and `-i xs=[a,b]` a list; text that is not YAML stays text."""
    if from_text and typ != "string" and isinstance(value, str) and value.strip():
        try:
            value, _ = load_yaml(value, CLI, limits=settings.limits())
        except SourceError as exc:
            if exc.kind != "syntax":  # over a limit, or a number Python refuses: not taken as text
                return None, f"cannot be read: {exc.diagnostics[0].message}"

    def bad(what: str) -> tuple[None, str]:
        if secret:
            return None, f"must be {what} {NOT_SHOWN}"
        shown = value if not isinstance(value, str) else f'"{value}"'
        return None, f"must be {what}, got {shown}"

    if typ == "string":
        return (value, None) if isinstance(value, str) else bad("a string")
    if typ == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else bad("an integer")
    if typ == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            return bad("a number")
        try:
            return float(value), None
        except OverflowError:  # an integer of hundreds of digits
            return bad("a number no larger than a float")
    if typ == "boolean":
        return (value, None) if isinstance(value, bool) else bad("true or false")
    if typ == "list":
        return (value, None) if isinstance(value, list) else bad("a list")
    if typ == "map":
        return (value, None) if isinstance(value, dict) else bad("a mapping")
    if typ.startswith("scalar-unit."):
        from toscaparser.elements.scalarunit import get_scalarunit_class
        cls = get_scalarunit_class(typ)
        if cls is None:
            return value, None
        try:
            cls(value).validate_scalar_unit()
        except Exception:  # noqa: BLE001 - tosca-parser raises plain ValueError/others
            return bad(f'a {typ} such as "4 GB"')
        return value, None
    if typ == "version":
        ok = isinstance(value, (str, int, float)) and re.fullmatch(
            r"\d+(\.\d+){0,2}([.-]\w+)?", str(value))
        return (str(value), None) if ok else bad('a version such as "1.2.3"')
    return value, None  # data types: tosca-parser validates their structure


def violated_constraint(decl: dict, value: Any, *, secret: bool = False) -> str | None:
    constraints = decl.get("constraints") or []
    if not isinstance(constraints, list):
        return None
    import toscaparser.functions  # noqa: F401 - constraints use it without importing it
    from toscaparser.elements.constraints import Constraint
    from toscaparser.elements.scalarunit import ScalarUnit, get_scalarunit_value
    typ = decl.get("type", "string")
    for c in constraints:
        try:
            constraint = Constraint("input", typ, c)
            probe = get_scalarunit_value(typ, value) if typ in ScalarUnit.SCALAR_UNIT_TYPES else value
            ok = constraint._is_valid(probe)  # tosca-parser's private check: without its global collector
        except Exception:  # noqa: BLE001 - a malformed constraint is tosca-parser's to report
            continue
        if not ok:
            (op, arg), = c.items() if isinstance(c, dict) and len(c) == 1 else ((str(c), ""),)
            return f"violates constraint {op}: {arg} " + (NOT_SHOWN if secret else f"(got {value!r})")
    return None
