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
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML build
    _Loader = yaml.SafeLoader

PathItem = str | int
Path = Sequence[PathItem]


class SourceMap:
    """Positions of the keys and values of one YAML document."""

    def __init__(self, file: str, root: yaml.Node | None) -> None:
        self.file = file
        self.root = root

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
    keys become located diagnostics. Duplicate keys are refused because YAML would
    silently keep the last one and drop what the user wrote first."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, SourceMap(file, None)
        dups = list(_duplicate_keys(root, file))
        if dups:
            raise TemplateError(dups)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "malformed YAML"
        context = ""
        if exc.context:
            cm = exc.context_mark
            started = f" started at line {cm.line + 1} column {cm.column + 1}" if cm and cm is not mark else ""
            context = f" ({exc.context}{started})"
        raise TemplateError([Diagnostic(file, line, col, f"invalid YAML: {problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise TemplateError([Diagnostic(file, 1, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return data, SourceMap(file, root)


def _duplicate_keys(root: yaml.Node, file: str) -> Iterable[Diagnostic]:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen and k.tag != "tag:yaml.org,2002:merge":
                        first = seen[k.value].start_mark.line + 1
                        yield Diagnostic(file, k.start_mark.line + 1, k.start_mark.column + 1,
                                         f'duplicate key "{k.value}" (first defined on line {first})')
                    seen[k.value] = k
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
