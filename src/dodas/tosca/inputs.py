"""Deployment inputs: `-i key=value`, `--inputs FILE.yaml`, checked before parsing.

dodas checks inputs itself, before tosca-parser, so that a wrong value is reported
where the user wrote it (the `-i` argument or the inputs file's line) and next to
where the template declares it, and so that values reach tosca-parser typed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dodas.errors import Diagnostic, TemplateError
from dodas.tosca.source import SourceMap, load_yaml

CLI = "<command line>"


@dataclass(frozen=True)
class GivenInput:
    """A value the user supplied, with where it came from."""

    value: Any
    file: str
    line: int
    col: int
    from_cli: bool = False

    def diag(self, message: str) -> Diagnostic:
        return Diagnostic(self.file, self.line, self.col, message)


def parse_cli_pairs(pairs: list[str]) -> tuple[dict[str, GivenInput], list[Diagnostic]]:
    """`key=value` strings; later ones win, as with repeated command-line flags."""
    given: dict[str, GivenInput] = {}
    diags: list[Diagnostic] = []
    for n, pair in enumerate(pairs, start=1):
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            diags.append(Diagnostic(CLI, 1, n, f'-i "{pair}": expected KEY=VALUE'))
            continue
        given[key] = GivenInput(raw, CLI, 1, n, from_cli=True)
    return given, diags


def read_inputs_file(path: str) -> dict[str, GivenInput]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError([Diagnostic(path, 1, 1, f"cannot read inputs file: {exc.strerror}")]) from None
    data, smap = load_yaml(text, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TemplateError([smap.diag((), "an inputs file must be a mapping of input names to values")])
    out = {}
    for key, value in data.items():
        line, col = smap.position((str(key),))
        out[str(key)] = GivenInput(value, path, line, col)
    return out


def check(decls: Any, given: dict[str, GivenInput], smap: SourceMap,
          base: tuple = ("topology_template", "inputs")) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Typed values for every given input; diagnostics for every bad one.

    Inputs that are not given keep their template default (tosca-parser applies
    it); a declared input with neither default nor value is an error unless it
    says `required: false`."""
    decls = decls if isinstance(decls, dict) else {}
    values: dict[str, Any] = {}
    diags: list[Diagnostic] = []
    for name, g in given.items():
        if name not in decls:
            hint = difflib.get_close_matches(name, list(decls), n=1)
            extra = f'; did you mean "{hint[0]}"?' if hint else (
                f"; it declares: {', '.join(sorted(decls))}" if decls else "; it declares none")
            diags.append(g.diag(f'unknown input "{name}": the template declares no such input{extra}'))
            continue
        decl = decls[name] if isinstance(decls[name], dict) else {}
        where = smap.position((*base, name), key=True)
        value, problem = coerce(decl.get("type", "string"), g.value, from_text=g.from_cli,
                                entry_schema=decl.get("entry_schema"))
        if problem is None:
            problem = violated_constraint(decl, value)
        if problem is not None:
            diags.append(g.diag(f'input "{name}" {problem} (declared at {smap.file}:{where[0]}:{where[1]})'))
        else:
            values[name] = value
    for name, decl in decls.items():
        if name in given or not isinstance(decl, dict):
            continue
        if "default" not in decl and decl.get("required", True) is not False:
            diags.append(smap.diag((*base, name), f'missing required input "{name}": '
                                   f"give it with -i {name}=VALUE or in an --inputs file", key=True))
    return values, diags


_INT_NAMES = {"integer": "an integer", "float": "a number", "boolean": "true or false",
              "list": "a list", "map": "a mapping", "string": "a string"}


def coerce(typ: str, value: Any, *, from_text: bool = False,
           entry_schema: Any = None) -> tuple[Any, str | None]:
    """(typed value, None) or (None, 'must be ...'). Text from `-i` is read as YAML
    for non-string types, so `-i n=3` is the integer 3 and `-i xs=[a,b]` a list."""
    if from_text and typ != "string" and isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            pass
    shown = value if not isinstance(value, str) else f'"{value}"'
    if typ == "string":
        return (value, None) if isinstance(value, str) else (None, f"must be a string, got {shown}")
    if typ == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (None, f"must be an integer, got {shown}")
    if typ == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value), None) if ok else (None, f"must be a number, got {shown}")
    if typ == "boolean":
        return (value, None) if isinstance(value, bool) else (None, f"must be true or false, got {shown}")
    if typ == "list":
        return (value, None) if isinstance(value, list) else (None, f"must be a list, got {shown}")
    if typ == "map":
        return (value, None) if isinstance(value, dict) else (None, f"must be a mapping, got {shown}")
    if typ.startswith("scalar-unit."):
        from toscaparser.elements.scalarunit import get_scalarunit_class
        cls = get_scalarunit_class(typ)
        if cls is None:
            return value, None
        try:
            cls(value).validate_scalar_unit()
        except Exception:  # noqa: BLE001 - tosca-parser raises plain ValueError/others
            return None, f'must be a {typ} such as "4 GB", got {shown}'
        return value, None
    if typ == "version":
        import re
        ok = isinstance(value, (str, int, float)) and re.fullmatch(
            r"\d+(\.\d+){0,2}([.-]\w+)?", str(value))
        return (str(value), None) if ok else (None, f'must be a version such as "1.2.3", got {shown}')
    return value, None  # data types: tosca-parser validates their structure


def violated_constraint(decl: dict, value: Any) -> str | None:
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
            ok = constraint._is_valid(probe)  # noqa: SLF001 - the check without the global collector
        except Exception:  # noqa: BLE001 - a malformed constraint is tosca-parser's to report
            continue
        if not ok:
            (op, arg), = c.items() if isinstance(c, dict) and len(c) == 1 else ((str(c), ""),)
            return f"violates constraint {op}: {arg} (got {value!r})"
    return None
