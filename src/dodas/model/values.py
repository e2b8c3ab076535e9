"""Values that can only be known at run time.

`get_attribute` (an address, an id, a generated token) is kept as an `AttrRef`;
`concat`/`join`/`token` over such a value stay as expressions over it. Everything
else is resolved to plain data at plan time. The engine resolves these once the
instances they name exist, through a lookup it is given, so the model never
depends on where attributes are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AttrRef:
    """`get_attribute` on a node, or (scope="host"/"self") on a related instance.

    `node` is always a node template name, resolved from SELF/HOST at plan time;
    `scope` remembers whether the original meant the current instance ("self"),
    its host instance ("host"), or the node as a whole ("node"), which matters
    when a node has several instances."""

    node: str
    attribute: str
    path: tuple[str | int, ...] = ()
    scope: str = "node"

    def to_json(self) -> dict[str, Any]:
        return {"get_attribute": [self.node, self.attribute, *self.path]}


@dataclass(frozen=True)
class Concat:
    parts: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {"concat": [to_json(p) for p in self.parts]}


@dataclass(frozen=True)
class Join:
    parts: tuple[Any, ...]
    delimiter: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"join": [[to_json(p) for p in self.parts], self.delimiter]}


@dataclass(frozen=True)
class Token:
    value: Any
    chars: str
    index: int

    def to_json(self) -> dict[str, Any]:
        return {"token": [to_json(self.value), self.chars, self.index]}


Deferred = AttrRef | Concat | Join | Token
DEFERRED_TYPES = (AttrRef, Concat, Join, Token)


def is_deferred(value: Any) -> bool:
    return any(True for _ in refs(value))


def refs(value: Any) -> Iterator[AttrRef]:
    """Every AttrRef inside a value, however nested."""
    if isinstance(value, AttrRef):
        yield value
    elif isinstance(value, Concat | Join):
        for p in value.parts:
            yield from refs(p)
    elif isinstance(value, Token):
        yield from refs(value.value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from refs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from refs(v)


def to_json(value: Any) -> Any:
    if isinstance(value, DEFERRED_TYPES):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def deferred_paths(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, expression) for each deferred value inside a property tree."""
    if isinstance(value, DEFERRED_TYPES):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from deferred_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from deferred_paths(v, f"{prefix}[{i}]")


def evaluate(value: Any, lookup: Callable[[AttrRef], Any]) -> Any:
    """Resolve a value now that attributes can be looked up."""
    if isinstance(value, AttrRef):
        return lookup(value)
    if isinstance(value, Concat):
        return "".join(_text(evaluate(p, lookup)) for p in value.parts)
    if isinstance(value, Join):
        return value.delimiter.join(_text(evaluate(p, lookup)) for p in value.parts)
    if isinstance(value, Token):
        return split_token(_text(evaluate(value.value, lookup)), value.chars, value.index)
    if isinstance(value, dict):
        return {k: evaluate(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, lookup) for v in value]
    return value


def split_token(text: str, chars: str, index: int) -> str:
    parts, cur = [], ""
    for ch in text:
        if ch in chars:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts[index] if -len(parts) <= index < len(parts) else ""


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
