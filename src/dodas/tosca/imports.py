"""Resolving a template's `imports` before tosca-parser sees them.

tosca-parser accepts a `local_defs` map from import URL to local file; dodas fills
it instead of patching the parser: the well-known INDIGO/DODAS type files map to
the bundled type library, other remote files are fetched once into the cache, and
relative file imports become absolute (tosca-parser needs that for pre-parsed input).
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

from dodas import paths
from dodas.errors import Diagnostic
from dodas.tosca.source import SourceMap, load_yaml

#: Type files whose content dodas bundles: any branch or tag of INDIGO's
#: tosca-types custom_types.yaml, and DODAS-TS's dodas_types.yml.
WELL_KNOWN = (
    re.compile(r"indigo-dc/tosca-types/.*custom_types\.ya?ml$"),
    re.compile(r"DODAS-TS/.*dodas_types\.ya?ml$", re.IGNORECASE),
)
FETCH_TIMEOUT_S = 10.0
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass
class ResolvedImports:
    local_defs: dict[str, str] = field(default_factory=dict)
    #: the imports list to hand to tosca-parser (relative paths made absolute)
    imports: list[Any] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def is_url(ref: str) -> bool:
    return bool(_URL.match(ref))


def well_known(url: str) -> bool:
    return any(p.search(url) for p in WELL_KNOWN)


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
    out = out or ResolvedImports()
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
                if depth < 8 and local != paths.TYPE_LIBRARY:
                    _nested(local, offline, depth, out)
            rewritten.append(entry)
        else:
            full = (base_dir / ref).resolve() if not os.path.isabs(ref) else Path(ref)
            if not full.is_file():
                out.diagnostics.append(smap.diag(where, f'imported file "{ref}" not found (looked for {full})'))
                continue
            if depth < 8:
                _nested(full, offline, depth, out)
            rewritten.append(_with_ref(entry, how, str(full)))
    if depth == 0:
        out.imports = rewritten
    return out


def _repository_of(entry: Any, how: Any) -> str | None:
    if how == "file" and isinstance(entry, dict):
        repo = entry.get("repository")
    elif isinstance(how, tuple):
        repo = entry[how[0]].get("repository")
    else:
        return None
    return repo if isinstance(repo, str) else None


def _nested(file: Path, offline: bool, depth: int, out: ResolvedImports) -> None:
    try:
        data, smap = load_yaml(file.read_text(encoding="utf-8"), str(file))
    except Exception:  # noqa: BLE001 - tosca-parser will report the file itself
        return
    if isinstance(data, dict) and data.get("imports"):
        resolve(data["imports"], file.parent, smap, offline=offline,
                repositories=data.get("repositories"), depth=depth + 1, out=out)


def _resolve_url(url: str, smap: SourceMap, where: tuple, offline: bool,
                 out: ResolvedImports) -> Path | None:
    if well_known(url):
        return paths.TYPE_LIBRARY
    cached = paths.cache_dir() / "imports" / (hashlib.sha256(url.encode()).hexdigest() + ".yaml")
    if cached.is_file():
        return cached
    if offline:
        out.diagnostics.append(smap.diag(
            where, f'remote import "{url}" is not cached and --offline forbids fetching it'))
        return None
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp:  # noqa: S310
            body = resp.read()
    except (urllib.error.URLError, socket.timeout, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        out.diagnostics.append(smap.diag(where, f'cannot fetch remote import "{url}": {reason}'))
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part")
    tmp.write_bytes(body)
    tmp.replace(cached)
    return cached
