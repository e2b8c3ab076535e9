"""YAML with positions.

tosca-parser works on plain dicts and reports no line numbers, so the loader parses
each file once into both the plain data (for tosca-parser) and the node tree with
marks (kept here), and maps every problem back to FILE:LINE:COL through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from dodas.errors import Diagnostic, TemplateError

try:  # libyaml is several times faster; PyYAML's wheels ship it
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML build
    _Base = yaml.SafeLoader


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loading that refuses duplicate keys: YAML would silently keep the last
    one and drop what the user wrote first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for k, _v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in seen:
                    first = seen[k.value].start_mark
                    raise _DuplicateKey(problem=f'duplicate key "{k.value}" (first defined on line {first.line + 1})',
                                        problem_mark=k.start_mark)
                seen[k.value] = k
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)

PathItem = str | int
Path = Sequence[PathItem]


class SourceMap:
    """Positions of the keys and values of one YAML document.

    The node tree is composed only when a position is first asked for: valid
    templates, the common case, never pay for it."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self._text = text
        self._root: yaml.Node | None = None
        self._composed = False

    @property
    def root(self) -> yaml.Node | None:
        if not self._composed:
            self._composed = True
            try:
                self._root = yaml.compose(self._text, Loader=_Base)
            except yaml.YAMLError:
                self._root = None
        return self._root

    # -- lookups -----------------------------------------------------------
    def _walk(self, path: Path) -> tuple[yaml.Node | None, yaml.Node | None]:
        """Follow `path` as far as it exists; return (deepest key node, value node)."""
        node, key_node = self.root, None
        for item in path:
            nxt = _child(node, item)
            if nxt is None:
                break
            key_node, node = nxt
        return key_node, node

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the value at `path`, or of its key when `key`.

        A path that exists only in part points at its deepest existing part, which
        is where the user has to look anyway (for example a missing field)."""
        key_node, node = self._walk(path)
        target = key_node if (key and key_node is not None) else node
        if target is None:
            return (1, 1)
        mark = target.start_mark
        return (mark.line + 1, mark.column + 1)

    def diag(self, path: Path, message: str, *, key: bool = False) -> Diagnostic:
        line, col = self.position(path, key=key)
        return Diagnostic(self.file, line, col, message)

    def exists(self, path: Path) -> bool:
        node = self.root
        for item in path:
            nxt = _child(node, item)
            if nxt is None:
                return False
            node = nxt[1]
        return True

    def search(self, tokens: Sequence[str], within: Path = ()) -> tuple[int, int] | None:
        """Position of the last of `tokens`, found as keys or scalar values nested
        in that order under `within`. Used to place tosca-parser's messages, which
        quote the names involved but give no position."""
        found = self.search_path(tokens, within)
        return found[0] if found else None

    def search_path(self, tokens: Sequence[str], within: Path = ()) -> tuple[tuple[int, int], list[PathItem]] | None:
        """Like `search`, also returning the path of mapping keys down to the match."""
        _, start = self._walk(within) if within else (None, self.root)
        if start is None or not tokens:
            return None
        found = _search(start, list(tokens), list(within))
        if found is None:
            return None
        node, path = found
        return (node.start_mark.line + 1, node.start_mark.column + 1), path


def _child(node: yaml.Node | None, item: PathItem) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(item):
                return k, v
    elif isinstance(node, yaml.SequenceNode) and isinstance(item, int):
        if 0 <= item < len(node.value):
            return node.value[item], node.value[item]
    return None


def _search(node: yaml.Node, tokens: list[str],
            path: list[PathItem]) -> tuple[yaml.Node, list[PathItem]] | None:
    """Breadth-first: match tokens[0] here or below, then the rest beneath it."""
    for cand, inner, where in _matches(node, tokens[0], path):
        if len(tokens) == 1:
            return cand, where
        deeper = _search(inner, tokens[1:], where)
        if deeper is not None:
            return deeper
    return None


def _matches(node: yaml.Node, token: str,
             path: list[PathItem]) -> Iterable[tuple[yaml.Node, yaml.Node, list[PathItem]]]:
    queue: list[tuple[yaml.Node, list[PathItem]]] = [(node, path)]
    while queue:
        cur, where = queue.pop(0)
        if isinstance(cur, yaml.MappingNode):
            for k, v in cur.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else "?"
                if isinstance(k, yaml.ScalarNode) and k.value == token:
                    yield k, v, [*where, key]
                queue.append((v, [*where, key]))
        elif isinstance(cur, yaml.SequenceNode):
            queue.extend((v, [*where, i]) for i, v in enumerate(cur.value))
        elif isinstance(cur, yaml.ScalarNode) and cur.value == token:
            yield cur, cur, where


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document into (data, positions); syntax errors and duplicate
    keys become located diagnostics."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "malformed YAML"
        context = ""
        if exc.context:
            cm = exc.context_mark
            started = f" started at line {cm.line + 1} column {cm.column + 1}" if cm and cm is not mark else ""
            context = f" ({exc.context}{started})"
        what = "" if isinstance(exc, _DuplicateKey) else "invalid YAML: "
        raise TemplateError([Diagnostic(file, line, col, f"{what}{problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise TemplateError([Diagnostic(file, 1, 1, f"invalid YAML: {exc}")]) from None
    return data, SourceMap(file, text)
