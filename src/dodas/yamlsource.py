"""YAML with positions, and within limits.

tosca-parser works on plain dicts and reports no line numbers, so the loader parses
each file once into both the plain data (for tosca-parser) and the node tree with
marks (kept here), and maps every problem back to FILE:LINE:COL through it.

This is the one YAML loader of dodas: templates, inputs files, `-i` values,
imported files and the operator's configuration all come through `read_source`
and `load_yaml`, which refuse, each with a located message and before anything is
built in memory, what would otherwise exhaust it or never end: files over a size
limit, recursive aliases, aliases that expand a small document into a huge one (a
"billion laughs"), and nesting deeper than code walking a value can recurse.

It is a neutral top-level module, beneath every stage that reads YAML (tosca/,
the model, providers' and the server's configuration, services/) and beneath
`dodas.settings` too: the bounds are the operator's (`dodas.settings.Limits`),
and reading the operator's configuration is itself YAML within bounds, so the
caller always hands the limits in (`settings.limits()`, or the built-in
defaults while the configuration itself is read). A required argument rather
than a default looked up here: this module imports no settings, and no caller
can forget whose limits apply.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from dodas.errors import Diagnostic, TemplateError

if TYPE_CHECKING:
    from dodas.settings import Limits

try:  # libyaml is several times faster; PyYAML's wheels ship it
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML build
    _Base = yaml.SafeLoader


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loading that notices duplicate keys, which YAML would silently resolve
    by keeping the last one and dropping what the user wrote first. By default a
    duplicate is refused; with `lenient_duplicates` (templates: PyYAML,
    tosca-parser and the Infrastructure Manager all take the last, and real
    templates rely on it) it is recorded in `duplicates` and the last one wins."""

    lenient_duplicates = False

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for k, _v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in seen:
                    first = seen[k.value].start_mark
                    if not self.lenient_duplicates:
                        raise _DuplicateKey(problem=f'duplicate key "{k.value}" (first defined on line '
                                            f"{first.line + 1})", problem_mark=k.start_mark)
                    self.duplicates.append((k.value, first.line + 1, k.start_mark.line + 1, k.start_mark.column + 1))
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
        #: located warnings found while reading (duplicate keys in lenient mode)
        self.warnings: list[Diagnostic] = []
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

    def written(self, path: Path) -> str | None:
        """The scalar at `path` as the file writes it (`1.10`, not Python's 1.1), or None."""
        _key, node = self._walk(path)
        return node.value if isinstance(node, yaml.ScalarNode) and path else None

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


class SourceError(TemplateError):
    """A file that cannot be read as YAML within the limits.

    `reason` says why without quoting a byte of the file, for files whose content
    must not be shown (an import may name any file readable by dodas); `kind` is
    "read" (unreadable, too large, not text), "syntax" (not YAML), "limit" (YAML
    over the limits) or "value" (a scalar Python cannot represent)."""

    reason: str = ""
    kind: str = "syntax"


def _fail(file: str, line: int, col: int, message: str, reason: str, kind: str) -> SourceError:
    err = SourceError([Diagnostic(file, line, col, message)])
    err.reason, err.kind = reason, kind
    return err


def read_source(path: str | os.PathLike[str], what: str, *, limits: Limits) -> str:
    """The text of a file, reading at most the size limit plus one byte: a huge
    file (or an endless one, like /dev/zero) is refused, never read whole."""
    lim = limits
    file = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(lim.max_file_bytes + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = getattr(exc, "strerror", None) or ("a NUL character in the name" if isinstance(exc, ValueError)
                                                     else type(exc).__name__)
        raise _fail(file, 1, 1, f"cannot read {what}: {reason}", f"it cannot be read: {reason}", "read") from None
    if len(raw) > lim.max_file_bytes:
        msg = f"larger than {lim.max_file_bytes} bytes ({lim.where('max_file_bytes')})"
        raise _fail(file, 1, 1, f"{what} is {msg}", f"it is {msg}", "read")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(file, line, col, f"{what} is not UTF-8 text", "it is not UTF-8 text", "read") from None


def load_yaml(text: str, file: str, *, limits: Limits,
              lenient_duplicates: bool = False) -> tuple[Any, SourceMap]:
    """Parse one YAML document into (data, positions); syntax errors, duplicate keys
    and documents over the limits become located diagnostics (SourceError). With
    `lenient_duplicates` a duplicate key is a located warning in `SourceMap.warnings`
    (naming the value that wins: the last) instead of an error."""
    lim = limits
    if len(text) > lim.max_file_bytes:
        msg = f"larger than {lim.max_file_bytes} bytes ({lim.where('max_file_bytes')})"
        raise _fail(file, 1, 1, f"the YAML text is {msg}", f"it is {msg}", "read")
    try:
        _check_events(text, file, lim)
        duplicates: list[tuple[str, int, int, int]] = []
        data = _construct(text, file, duplicates if lenient_duplicates else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "malformed YAML"
        context = ""
        if exc.context:
            cm = exc.context_mark
            started = f" started at line {cm.line + 1} column {cm.column + 1}" if cm and cm is not mark else ""
            context = f" ({exc.context}{started})"
        dup = isinstance(exc, _DuplicateKey)
        what = "" if dup else "invalid YAML: "
        reason = f"{'a duplicate key' if dup else 'invalid YAML'} at line {line} column {col}"
        raise _fail(file, line, col, f"{what}{problem}{context}", reason, "syntax") from None
    except yaml.YAMLError as exc:
        raise _fail(file, 1, 1, f"invalid YAML: {exc}", "invalid YAML", "syntax") from None
    smap = SourceMap(file, text)
    for key, first, line, col in (duplicates if lenient_duplicates else ()):
        smap.warnings.append(Diagnostic(file, line, col, f'duplicate key "{key}" (first defined on line {first}): '
                                        f"the value on line {line} is used, as YAML tools take the last one; "
                                        "remove one of them (--strict refuses this)"))
    return data, smap


def read_yaml(path: str | os.PathLike[str], what: str, *, limits: Limits) -> tuple[Any, SourceMap]:
    """A YAML file's (data, positions): `read_source` then `load_yaml`, for the
    many callers that need nothing of the text itself (configuration files,
    inputs files, the type library)."""
    text = read_source(path, what, limits=limits)
    return load_yaml(text, str(path), limits=limits)


_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_events(text: str, file: str, lim: Limits) -> None:
    """Walk the parser's events (constant memory, nothing composed yet) and refuse
    a document that is too big or too deep once its aliases are expanded, or whose
    aliases refer to a value that contains them.

    The expanded size and height of each anchored value are known once it ends
    and are reused for every alias to it (memoized by anchor, as the composer
    shares the node): a billion laughs costs one pass over its text, not its
    expansion. Scalars, most of any document, cost a type test and an addition."""
    max_depth, max_values = lim.max_yaml_depth, lim.max_yaml_nodes
    #: anchor -> (values, collection levels) of its latest definition, or the
    #: marker of the collection that defines it while that is still open
    anchors: dict[str, Any] = {}
    stack: list[list[Any]] = []  # open collections: [anchor, marker, total at start, deepest level inside]
    total = 0
    for ev in yaml.parse(text, Loader=_Base):
        kind = type(ev)
        if kind is yaml.ScalarEvent:
            total += 1
            if ev.anchor is not None:
                anchors[ev.anchor] = (1, 0)
        elif kind in _STARTS:
            total += 1
            depth = len(stack) + 1
            if depth > max_depth:
                raise _limit(file, ev, f"nesting deeper than {max_depth} levels", lim.where("max_yaml_depth"))
            marker = object()
            stack.append([ev.anchor, marker, total, depth])
            if ev.anchor is not None:
                anchors[ev.anchor] = marker
        elif kind in _ENDS:
            anchor, marker, start, deepest = stack.pop()
            if stack and deepest > stack[-1][3]:
                stack[-1][3] = deepest
            if anchor is not None and anchors.get(anchor) is marker:  # not redefined inside itself
                anchors[anchor] = (total - start + 1, deepest - len(stack))
            continue
        elif kind is yaml.AliasEvent:
            known = anchors.get(ev.anchor, (1, 0))  # an undefined one: the composer says so
            if not isinstance(known, tuple):
                raise _fail(file, ev.start_mark.line + 1, ev.start_mark.column + 1,
                            "recursive alias: it refers to a value that contains it",
                            f"a recursive alias at line {ev.start_mark.line + 1}", "limit")
            size, height = known
            total += size
            reach = len(stack) + height
            if reach > max_depth:
                raise _limit(file, ev, f"this alias expands to nesting deeper than {max_depth} levels",
                             lim.where("max_yaml_depth"))
            if stack and reach > stack[-1][3]:
                stack[-1][3] = reach
        else:
            continue
        if total > max_values:
            what = "this alias expands the document to" if kind is yaml.AliasEvent else "the document has"
            raise _limit(file, ev, f"{what} more than {max_values} values", lim.where("max_yaml_nodes"))


def _limit(file: str, ev: yaml.Event, message: str, how: str) -> SourceError:
    """A limit reached at `ev`; `how` says how to change the limit."""
    mark = ev.start_mark
    return _fail(file, mark.line + 1, mark.column + 1, f"{message} ({how})",
                 f"{message} at line {mark.line + 1}", "limit")


def _construct(text: str, file: str, duplicates: list | None = None) -> Any:
    loader = _Loader(text)
    if duplicates is not None:
        loader.lenient_duplicates = True
        loader.duplicates = duplicates
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            return loader.construct_document(node)
        except (ValueError, OverflowError, TypeError) as exc:  # a scalar YAML resolves but Python refuses
            line, col = _bad_scalar(node)
            why = str(exc).split(";")[0]  # Python's advice on its own settings is not the user's
            raise _fail(file, line, col, f"invalid YAML: this value cannot be read ({why})",
                        f"a value that cannot be read at line {line}", "value") from None
    finally:
        loader.dispose()


def _bad_scalar(root: yaml.Node) -> tuple[int, int]:
    """Where the first scalar that fails to construct is (say, an integer of more
    digits than Python converts, or a timestamp of month 13)."""
    probe = _Loader("")
    seen: set[int] = set()
    todo = [root]
    try:
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.ScalarNode):
                try:
                    probe.construct_object(node)
                except Exception:  # noqa: BLE001 - any failure is the one to place
                    return node.start_mark.line + 1, node.start_mark.column + 1
            elif isinstance(node, yaml.SequenceNode):
                todo.extend(reversed(node.value))
            elif isinstance(node, yaml.MappingNode):
                todo.extend(x for pair in reversed(node.value) for x in reversed(pair))
    finally:
        probe.dispose()
    return root.start_mark.line + 1, root.start_mark.column + 1
