"""Inputs without a value, for `validate`: an unknown of the declared type.

Like `terraform validate`, `dodas validate` checks the template, not a deployment:
a required input nobody gave stands for "some value of its type". The parser
needs a value to go on, so each such input gets a stand-in that satisfies its type
and its constraints (the first `valid_values` entry, a number within its bounds,
a string of an allowed length), and everything that depends on it is checked as
far as a value of that type allows: types, references, requirements, counts.
`plan` and `up` never use stand-ins: they require the real values.
"""

from __future__ import annotations

from typing import Any

#: a stand-in per type where the constraints leave the choice open
_BY_TYPE: dict[str, Any] = {
    "integer": 1, "float": 1.0, "boolean": False, "list": [], "map": {},
    "scalar-unit.size": "1 GB", "scalar-unit.time": "1 s", "scalar-unit.frequency": "1 GHz",
    "scalar-unit.bitrate": "1 Mbps", "version": "1.0", "timestamp": "2000-01-01T00:00:00Z", "range": [0, 1],
}


def stand_in(name: str, decl: Any) -> Any:
    """A value of the input's declared type that meets its constraints (as far as
    they can be met without knowing more: a `pattern` is not searched for)."""
    decl = decl if isinstance(decl, dict) else {}
    typ = str(decl.get("type", "string"))
    constraints = [c for c in (decl.get("constraints") or []) if isinstance(c, dict) and len(c) == 1]
    for c in constraints:
        (op, arg), = c.items()
        if op == "valid_values" and isinstance(arg, list) and arg:
            return arg[0]
        if op == "equal":
            return arg
    if typ in ("integer", "float"):
        return _number(typ, constraints)
    if typ == "string":
        return _string(name, constraints)
    return _BY_TYPE.get(typ, {})  # a data type: an empty mapping (its own checks are the parser's)


def _number(typ: str, constraints: list[dict]) -> int | float:
    low: float | None = None
    high: float | None = None
    for c in constraints:
        (op, arg), = c.items()
        if op == "in_range" and isinstance(arg, list) and len(arg) == 2:
            low, high = arg[0], arg[1]
        elif op in ("greater_or_equal", "greater_than") and isinstance(arg, (int, float)):
            low = arg + (1 if op == "greater_than" and typ == "integer" else 0.5 if op == "greater_than" else 0)
        elif op in ("less_or_equal", "less_than") and isinstance(arg, (int, float)):
            high = arg - (1 if op == "less_than" and typ == "integer" else 0.5 if op == "less_than" else 0)
    value: float = 1 if low is None else low
    if high is not None and value > high:
        value = high
    return int(value) if typ == "integer" else float(value)


def _string(name: str, constraints: list[dict]) -> str:
    text = f"unknown-{name}"
    for c in constraints:
        (op, arg), = c.items()
        if op == "length" and isinstance(arg, int):
            text = (text * (arg // max(len(text), 1) + 1))[:arg]
        elif op == "min_length" and isinstance(arg, int) and len(text) < arg:
            text = text.ljust(arg, "x")
        elif op == "max_length" and isinstance(arg, int):
            text = text[:arg]
    return text
