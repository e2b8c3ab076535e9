"""Intrinsic functions at plan time.

`get_input`, `get_property`, `concat`, `join` and `token` become plain values now;
`get_attribute` becomes an AttrRef, and any function over one stays an expression
(values.Concat, ...). Problems are raised as FunctionError with a message naming
the function and argument; the builder places them in the YAML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dodas.model.values import DEFERRED_TYPES, AttrRef, Concat, Join, Token, is_deferred, split_token

FUNCTIONS = ("get_input", "get_property", "get_attribute", "concat", "join", "token")
UNSUPPORTED = ("get_operation_output", "get_nodes_of_type", "get_artifact")


class FunctionError(Exception):
    pass


def function_name(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        (k,) = value.keys()
        if k in FUNCTIONS or k in UNSUPPORTED:
            return k
    return None


class Resolver:
    """Resolves functions for the properties of one model being built.

    `prop_source(node, capability_or_None)` gives a node's (or one capability's)
    raw property values with defaults applied; `host_of(node)` its host node."""

    def __init__(self, inputs: dict[str, Any], node_names: set[str],
                 prop_source: Callable[[str, str | None], dict[str, Any] | None],
                 host_of: Callable[[str], str | None]) -> None:
        self.inputs = inputs
        self.node_names = node_names
        self.prop_source = prop_source
        self.host_of = host_of
        self._stack: list[tuple[str, str | None, str]] = []

    def resolve(self, value: Any, self_node: str) -> Any:
        fn = function_name(value)
        if fn is not None:
            return getattr(self, "_" + fn, self._unsupported)(value[fn], self_node, fn)
        if isinstance(value, dict):
            return {k: self.resolve(v, self_node) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, self_node) for v in value]
        return value

    # -- the functions -------------------------------------------------------
    def _unsupported(self, _args: Any, _node: str, fn: str) -> Any:
        raise FunctionError(f"{fn} is not supported by dodas")

    def _get_input(self, args: Any, node: str, fn: str) -> Any:
        name = args[0] if isinstance(args, list) and len(args) == 1 else args
        if not isinstance(name, str):
            raise FunctionError("get_input takes the name of an input")
        if name not in self.inputs:
            raise FunctionError(f'get_input refers to input "{name}", which the template does not declare')
        return self.inputs[name]

    def _node_ref(self, ref: Any, node: str, fn: str) -> tuple[str, str]:
        if ref == "SELF":
            return node, "self"
        if ref == "HOST":
            host = self.host_of(node)
            if host is None:
                raise FunctionError(f'{fn} uses HOST but node "{node}" has no host')
            return host, "host"
        if ref in ("SOURCE", "TARGET"):
            raise FunctionError(f"{fn} with {ref} is only meaningful in relationship templates")
        if not isinstance(ref, str) or ref not in self.node_names:
            raise FunctionError(f'{fn} refers to node "{ref}", which the template does not define')
        return ref, "node"

    def _get_property(self, args: Any, node: str, fn: str) -> Any:
        if not isinstance(args, list) or len(args) < 2:
            raise FunctionError("get_property takes [node, property] or [node, capability, property]")
        if not all(isinstance(a, str | int) and not isinstance(a, bool) for a in args[1:]):
            raise FunctionError("get_property: names and indexes must be plain strings or numbers")
        target, _scope = self._node_ref(args[0], node, fn)
        rest = [str(a) if i < 2 else a for i, a in enumerate(args[1:])]
        # [node, capability, property, ...] when the second item names a capability
        caps = self.prop_source(target, rest[0]) if len(rest) >= 2 else None
        where, props = (rest[0], caps) if caps is not None else (None, self.prop_source(target, None) or {})
        name = rest[1] if where else rest[0]
        path = rest[2:] if where else rest[1:]
        if name not in props:
            if args[0] == "HOST":  # walk further down the host chain
                host = self.host_of(target)
                if host is not None:
                    return self._get_property([host, *args[1:]], node, fn)
            owner = f'capability "{where}" of node "{target}"' if where else f'node "{target}"'
            raise FunctionError(f'get_property: {owner} has no property "{name}"')
        key = (target, where, str(name))
        if key in self._stack:
            chain = " -> ".join(f"{n}.{p}" for n, _, p in [*self._stack, key])
            raise FunctionError(f"get_property loop: {chain}")
        self._stack.append(key)
        try:
            value = self.resolve(props[name], target)
        finally:
            self._stack.pop()
        for p in path:
            try:
                value = value[p]
            except (KeyError, IndexError, TypeError):
                raise FunctionError(f'get_property: no "{p}" inside {target}.{name}') from None
        return value

    def _get_attribute(self, args: Any, node: str, fn: str) -> Any:
        if not isinstance(args, list) or len(args) < 2 or not isinstance(args[1], str):
            raise FunctionError("get_attribute takes [node, attribute, index or key...]")
        target, scope = self._node_ref(args[0], node, fn)
        path = tuple(self.resolve(a, node) for a in args[2:])
        if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in path):
            raise FunctionError("get_attribute: indexes and keys must be plain strings or numbers")
        return AttrRef(target, args[1], path, scope)

    def _concat(self, args: Any, node: str, fn: str) -> Any:
        if not isinstance(args, list):
            raise FunctionError("concat takes a list")
        parts = [self.resolve(a, node) for a in args]
        if any(is_deferred(p) for p in parts):
            return Concat(tuple(parts))
        return "".join(_text(p) for p in parts)

    def _join(self, args: Any, node: str, fn: str) -> Any:
        if not isinstance(args, list) or not args or not isinstance(args[0], list):
            raise FunctionError("join takes [[strings], delimiter]")
        parts = [self.resolve(a, node) for a in args[0]]
        delim = args[1] if len(args) > 1 else ""
        if not isinstance(delim, str):
            raise FunctionError("join: the delimiter must be a string")
        if any(is_deferred(p) for p in parts):
            return Join(tuple(parts), delim)
        return delim.join(_text(p) for p in parts)

    def _token(self, args: Any, node: str, fn: str) -> Any:
        if not isinstance(args, list) or len(args) != 3 or not isinstance(args[1], str) \
                or not isinstance(args[2], int):
            raise FunctionError("token takes [string, separator characters, index]")
        value = self.resolve(args[0], node)
        if isinstance(value, DEFERRED_TYPES):
            return Token(value, args[1], args[2])
        return split_token(_text(value), args[1], args[2])


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)
