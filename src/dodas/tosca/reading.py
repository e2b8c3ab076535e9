"""How a scalar is read as a declared type it is not written in (tosca/lenient.py
for the template's values, tosca/inputs.py for an inputs file's): one rule and
one wording for both."""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NUMERIC = ("integer", "float", "number")
#: a TOSCA type as a message names what it expects
NAMES = {"string": "a string", "integer": "an integer", "float": "a float", "number": "a number",
         "boolean": "true or false", "list": "a list", "map": "a mapping"}
#: the types read by `read_as`
SCALARS = ("string", "integer", "float", "number", "boolean")


def warning(where: str, value: Any, given: str, typ: str, read: Any, secret: bool) -> str:
    """What a value read as another type than its own says (`given`: as written)."""
    what = f"{_kind(value)} (its value is not shown: a secret)" if secret else f"{given} is {_kind(value)}"
    shown = " one" if secret else (f' "{read}"' if isinstance(read, str) else f" {read}")
    return (f"{where}{what} where {NAMES[typ]} is expected: read as{shown}, as the INDIGO orchestrator reads it "
            "(--strict refuses this)")


def written_as(text: str | None, value: Any) -> str:
    """The string a scalar stands for: its text in the file, else its YAML spelling."""
    if text is not None:
        return text
    return str(value).lower() if isinstance(value, bool) else str(value)


def read_as(typ: str, value: Any, written: Any) -> tuple[Any, str]:
    """(value read as `typ`, how): "same", "silent", "warn" or "error"."""
    try:
        return _read_as(typ, value, written)
    except (OverflowError, ValueError):  # hundreds of digits: no float holds it, Python refuses to read it
        return value, "error"


def _read_as(typ: str, value: Any, written: Any) -> tuple[Any, str]:
    is_bool = isinstance(value, bool)
    if typ == "string":
        if isinstance(value, str):
            return value, "same"
        if is_bool or isinstance(value, (int, float, datetime.date)):
            return written(), "warn"
        return value, ("error" if isinstance(value, (list, dict)) else "same")
    if typ == "boolean":
        ok = is_bool or (isinstance(value, str) and value.lower() in ("true", "false"))
        return value, "same" if ok else "error"
    if typ in _NUMERIC:
        if isinstance(value, (int, float)) and not is_bool:
            if typ == "float" and isinstance(value, int):
                return float(value), "silent"
            if typ == "integer" and isinstance(value, float):
                return (int(value), "warn") if value.is_integer() else (value, "error")
            return value, "same"
        if isinstance(value, str):
            text = value.strip()
            if _INT.match(text) and typ != "float":
                return int(text), "warn"
            if _FLOAT.match(text) and typ != "integer" and math.isfinite(float(text)):
                return float(text), "warn"
            return value, "error"
        bad = (is_bool and typ == "float") or isinstance(value, (list, dict))  # tosca-parser takes True as 1
        return value, ("error" if bad else "same")
    return value, "same"


def given_as(value: Any) -> str:
    """A value as a message quotes it."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else str(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, datetime.date):
        return "a date"
    return "a string"
