"""Resolving a template's `imports` before tosca-parser sees them.

tosca-parser accepts a `local_defs` map from import URL to local file; dodas fills
it instead of patching the parser: the well-known INDIGO/DODAS type files map to
the bundled type library (tosca/library/, all of it), other remote files are
fetched once into the cache, or read from the local copy or mirror the operator
names (settings.import_mirrors; offline, the message names that setting), and
relative file imports become absolute (tosca-parser needs that for pre-parsed input).

Every imported file tosca-parser will read is read here first, through dodas's own
YAML loader and its limits, and must be a TOSCA document; one that is not (say
`imports: [/etc/shadow]`, a binary, a YAML list, a huge file) is reported at the
import entry by its path and a reason only. No message quotes a line of it: an
import may name any file dodas can read, and its content is not the user's to see.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dodas import paths, settings
from dodas.errors import Diagnostic
from dodas.settings import Limits
from dodas.yamlsource import SourceError, SourceMap, read_yaml

#: the type files of INDIGO-DataCloud and DODAS-TS whose declarations dodas bundles
#: (any branch or tag, raw.githubusercontent.com or github.com/OWNER/REPO/raw/..., any
#: letter case of the owner, with or without a query string): all resolve to the
#: bundled library, offline. INDIGO's tosca-types holds custom_types.yaml and, on
#: DODAS branches, dodas_types/; DODAS-TS's repositories keep theirs in tosca-types/.
WELL_KNOWN = (
    re.compile(r"indigo-dc/tosca-types/.*custom_types\.ya?ml$", re.IGNORECASE),
    re.compile(r"indigo-dc/tosca-types/.*dodas_types/.+\.ya?ml$", re.IGNORECASE),
    re.compile(r"DODAS-TS/.*tosca-types/.+\.ya?ml$", re.IGNORECASE),
    re.compile(r"DODAS-TS/.*dodas_types\.ya?ml$", re.IGNORECASE),
    re.compile(r"DODAS-TS/.*dodas_legacy_types\.ya?ml$", re.IGNORECASE),
    re.compile(r"DODAS-TS/.*dodas_custom_apps/.+\.ya?ml$", re.IGNORECASE),
)
FETCH_TIMEOUT_S = 10.0
#: imports of imports of ... this deep are refused (tosca-parser would follow them unchecked)
MAX_IMPORT_DEPTH = 8
VERSIONS = ("tosca_simple_yaml_1_0", "tosca_simple_yaml_1_2", "tosca_simple_yaml_1_3")
#: the top-level keys of a TOSCA document (tosca-parser's TypeValidation allows these)
#: the top-level sections of a TOSCA simple-profile document (as tosca-parser reads them)
SECTIONS = ("tosca_definitions_version", "description", "imports", "dsl_definitions", "node_types",
            "repositories", "data_types", "artifact_types", "group_types", "relationship_types",
            "capability_types", "interface_types", "policy_types", "topology_template", "metadata",
            "tosca_default_namespace", "template_name", "template_author", "template_version",
            "relationship_templates")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass
class ResolvedImports:
    local_defs: dict[str, str] = field(default_factory=dict)
    #: the imports list to hand to tosca-parser (relative paths made absolute)
    imports: list[Any] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: imported files already checked (resolved paths): each is read once
    seen: set[str] = field(default_factory=set)
    #: the files whose imports are being resolved, outermost first: one met again is a cycle
    chain: list[str] = field(default_factory=list)


def is_url(ref: str) -> bool:
    return bool(_URL.match(ref))


def well_known(url: str) -> bool:
    bare = url.split("?", 1)[0].split("#", 1)[0]
    return any(p.search(bare) for p in WELL_KNOWN)


def entry_ref(entry: Any) -> str | None:
    """The file or URL an import entry names (None for a malformed entry)."""
    return _entry_ref(entry)[0]


def _entry_ref(entry: Any) -> tuple[str | None, Any]:
    """The file/URL an import entry names, and a setter-friendly description."""
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        if "file" in entry:
            ref = entry.get("file")
            return (ref if isinstance(ref, str) else None), "file"
        if len(entry) == 1:
            (name, val), = entry.items()
            if isinstance(val, str):
                return val, name
            if isinstance(val, dict) and isinstance(val.get("file"), str):
                return val["file"], (name, "file")
    return None, None


def _with_ref(entry: Any, how: Any, ref: str) -> Any:
    if how is None:
        return ref
    if how == "file":
        return {**entry, "file": ref}
    if isinstance(how, tuple):
        name = how[0]
        return {name: {**entry[name], "file": ref}}
    return {how: ref}


def resolve(imports: Any, base_dir: Path, smap: SourceMap, *, offline: bool,
            repositories: Any = None, path: tuple = ("imports",), depth: int = 0,
            out: ResolvedImports | None = None) -> ResolvedImports:
    """Map every import to a local file; problems become diagnostics at the entry."""
    if out is None:
        out = ResolvedImports(chain=[os.path.realpath(smap.file)])
    if imports is None:
        return out
    if not isinstance(imports, list):
        out.diagnostics.append(smap.diag(path, "imports must be a list"))
        return out
    rewritten: list[Any] = []
    for i, entry in enumerate(imports):
        ref, how = _entry_ref(entry)
        where = (*path, i)
        if ref is None:
            out.diagnostics.append(smap.diag(where, "an import must name a file or URL"))
            continue
        if "\0" in ref:  # no file or URL has one; the operating system refuses to look it up
            out.diagnostics.append(smap.diag(where, "an import cannot contain a NUL character"))
            continue
        repo = _repository_of(entry, how)
        if repo is not None:
            base = (repositories or {}).get(repo) if isinstance(repositories, dict) else None
            url = base.get("url") if isinstance(base, dict) else base
            if not isinstance(url, str):
                out.diagnostics.append(smap.diag(where, f'import names unknown repository "{repo}"'))
                continue
            ref = url.strip().rstrip("/") + "/" + ref.lstrip("/")
            entry, how = ref, None
        if is_url(ref):
            local = _resolve_url(ref, smap, where, offline, out)
            if local is not None:
                out.local_defs[ref] = str(local)
                if local != paths.TYPE_LIBRARY:
                    _nested(local, ref, smap, where, offline, depth, out)
            rewritten.append(entry)
        else:
            full = _local_file(ref, base_dir, nested=depth > 0)
            if not full.exists():
                out.diagnostics.append(smap.diag(where, f'imported file "{ref}" not found (looked for {full})'))
                continue
            if not full.is_file():
                out.diagnostics.append(smap.diag(where, f'imported file "{ref}" is not a regular file'))
                continue
            _nested(full, ref, smap, where, offline, depth, out)
            rewritten.append(_with_ref(entry, how, str(full)))
    if depth == 0:
        out.imports = rewritten
    return out


def names_a_file(entry: Any) -> bool:
    """Whether an import entry names a file (not a URL, nor a file of a repository)."""
    ref, how = _entry_ref(entry)
    return isinstance(ref, str) and _repository_of(entry, how) is None and not is_url(ref)


def _repository_of(entry: Any, how: Any) -> str | None:
    if how == "file" and isinstance(entry, dict):
        repo = entry.get("repository")
    elif isinstance(how, tuple):
        repo = entry[how[0]].get("repository")
    else:
        return None
    return repo if isinstance(repo, str) else None


def _local_file(ref: str, base_dir: Path, *, nested: bool) -> Path:
    """The file tosca-parser will read for a file import. The template's own
    imports are made absolute here; an imported file's imports are resolved by
    tosca-parser itself, which tries the name as it is (relative to the current
    directory) before the importing file's directory: the same file is checked."""
    if os.path.isabs(ref):
        return Path(ref)
    if nested and os.path.isfile(ref):
        return Path(ref).resolve()
    return (base_dir / ref).resolve()


def _nested(file: Path, ref: str, smap: SourceMap, where: tuple, offline: bool, depth: int,
            out: ResolvedImports) -> None:
    """Check an imported file before tosca-parser reads it, then resolve its own
    imports. A problem is reported at the import entry, by the file's name and a
    reason that quotes nothing of it."""
    key = os.path.realpath(file)
    if key in out.chain:  # tosca-parser would recurse until Python gives up
        size = len(out.chain) - out.chain.index(key)
        out.diagnostics.append(smap.diag(where, f'imports form a cycle: "{ref}" is imported again by a file it '
                                                f"imports ({size} files in the cycle)"))
        return
    if key in out.seen:
        return
    out.seen.add(key)
    if depth + 1 > MAX_IMPORT_DEPTH:
        out.diagnostics.append(smap.diag(where, f'imported file "{ref}": imports are nested more than '
                                                f"{MAX_IMPORT_DEPTH} deep"))
        return
    try:
        data, nested_smap = read_yaml(file, "imported file", limits=settings.limits())
    except SourceError as exc:
        out.diagnostics.append(smap.diag(where, f'imported file "{ref}" is not a TOSCA document: {exc.reason}'))
        return
    problem = not_tosca(data)
    if problem is not None:
        out.diagnostics.append(smap.diag(where, f'imported file "{ref}" is not a TOSCA document: {problem}'))
        return
    if data.get("imports"):
        out.chain.append(key)
        resolve(data["imports"], file.parent, nested_smap, offline=offline,
                repositories=data.get("repositories"), depth=depth + 1, out=out)
        out.chain.pop()


def not_tosca(data: Any) -> str | None:
    """Why a parsed file is not a TOSCA document, in words that quote none of it;
    None when it is one. A section name is named only once the file has shown it
    is TOSCA (a supported tosca_definitions_version), and only if it is a name."""
    if not isinstance(data, dict):
        return "not a YAML mapping"
    if "tosca_definitions_version" not in data:
        return "it has no tosca_definitions_version"
    if data["tosca_definitions_version"] not in VERSIONS:
        return f"its tosca_definitions_version is not one of {', '.join(VERSIONS)}"
    for key in data:
        if key not in SECTIONS:
            named = f' "{key}"' if isinstance(key, str) and _NAME.fullmatch(key) else ""
            return f"it has a top-level section{named} that TOSCA does not define"
    return None


def _resolve_url(url: str, smap: SourceMap, where: tuple, offline: bool,
                 out: ResolvedImports) -> Path | None:
    if well_known(url):
        return paths.TYPE_LIBRARY
    cached = paths.cache_dir() / "imports" / (hashlib.sha256(url.encode()).hexdigest() + ".yaml")
    if cached.is_file():
        return cached
    source = _mirrored(url)
    if not is_url(source):
        if source == "":  # a path that climbs out of the mirror's folder (`..`)
            out.diagnostics.append(smap.diag(where, f'remote import "{url}" could not be fetched: it names a file '
                                                    f"outside its local copy's folder ({settings.mirrors_where()})"))
            return None
        if Path(source).is_file():
            return Path(source)
        out.diagnostics.append(smap.diag(where, f'remote import "{url}" could not be fetched: its local copy '
                                                f"{source} does not exist ({settings.mirrors_where()})"))
        return None
    if offline:
        out.diagnostics.append(smap.diag(
            where, f'remote import "{url}" could not be fetched: it is not cached and --offline forbids fetching '
                   f"it; point dodas at a local copy or a mirror with {settings.mirrors_where()}"))
        return None
    limit = settings.limits().max_file_bytes
    try:
        with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT_S) as resp:
            body = resp.read(limit + 1)  # never more than the limit, whatever the server sends
    except (urllib.error.URLError, socket.timeout, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        via = f" (from {source})" if source != url else ""
        out.diagnostics.append(smap.diag(where, f'cannot fetch remote import "{url}"{via}: {reason}; a local copy '
                                                f"or a mirror: {settings.mirrors_where()}"))
        return None
    if len(body) > limit:
        out.diagnostics.append(smap.diag(where, f'remote import "{url}" is larger than {limit} bytes '
                                                f"({Limits.where('max_file_bytes')})"))
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part")
    tmp.write_bytes(body)
    tmp.replace(cached)
    return cached


def _mirrored(url: str) -> str:
    """Where to read `url` from: a local copy or a mirror (settings.import_mirrors,
    the longest matching prefix), or the URL itself; "" for a local path that
    `..` takes out of the copy's folder."""
    mirrors = settings.import_mirrors()
    prefix = max((p for p in mirrors if url.startswith(p)), key=len, default=None)
    if prefix is None:
        return url
    target = mirrors[prefix]
    rest = url[len(prefix):].split("?", 1)[0].split("#", 1)[0]
    if is_url(target):
        return target.rstrip("/") + "/" + rest.lstrip("/") if rest else target
    folder = Path(target).resolve()
    local = (folder / rest.lstrip("/")).resolve() if rest else folder
    # "" for a path out of the folder: an import names any URL, not any file of the machine
    return str(local) if local == folder or local.is_relative_to(folder) else ""
