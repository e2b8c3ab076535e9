"""The catalogue as one user of one server sees it: which templates they can
deploy here, and for the others why not (no provider of the kind it needs,
none of that kind among the providers their groups may use).

The answer comes from the rules that decide a real request: the template is
planned with its defaults (offline: a template that needs the network, or
inputs without defaults, is not judged here and stays offered), placement
(providers/placement.py) names the providers that could take it, and the
server's tenancy (tenancy.allowed) keeps those this user may use. A plan is
kept per file and modification time: a page of the catalogue plans each
template once, not once per view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dodas.services import tenancy

_models: dict[tuple[str, float], Any] = {}


def _model(path: Path) -> Any:
    """The template's model with its defaults, or None when it cannot be judged offline."""
    from dodas.errors import DodasError
    from dodas.services import plan_given

    key = (str(path), path.stat().st_mtime)
    if key not in _models:
        try:
            _models[key] = plan_given(str(path), {}, offline=True, environment=False).model
        except (DodasError, OSError, ValueError):
            _models[key] = None
        if len(_models) > 256:
            _models.clear()
    return _models.get(key)


def unfit(cfg: Any, caller: tenancy.Caller, path: Path) -> str | None:
    """Why this user cannot deploy the template on this server, or None when they can (or it cannot be told)."""
    from dodas.errors import DodasError
    from dodas.providers import placement
    from dodas.services.answers import public

    model = _model(path)
    if model is None:
        return None
    try:
        found = placement.candidates(model, None, 1 << 30)
    except DodasError as exc:
        return public(exc.message)
    ok = tenancy.allowed(caller, cfg)
    usable = [c for c in found if ok(c) and not placement.unfit(c, model)]
    if usable:
        return None
    kinds = ", ".join(sorted({c.type for c in found})) or "none"
    return (f"none of the providers you may use here can take it (it needs a provider of type {kinds}"
            + (", and those are not in your groups' providers)" if found else ")"))


def for_caller(cfg: Any, caller: tenancy.Caller) -> list[dict[str, Any]]:
    """The catalogue's entries, those this user can deploy here first, each with `unfit` (None or why not)."""
    from dodas.services import catalogue as cat

    out = []
    for e in cat.entries(cfg.catalogue):
        e["unfit"] = unfit(cfg, caller, cat.path_of(cfg.catalogue, e["name"]))
        out.append(e)
    return sorted(out, key=lambda e: e["unfit"] is not None)  # stable: the catalogue's order within each


def entry_unfit(cfg: Any, caller: tenancy.Caller, name: str) -> str | None:
    """`unfit` of the catalogue's entry `name` (its deploy form says it too)."""
    from dodas.services import catalogue as cat

    return unfit(cfg, caller, cat.path_of(cfg.catalogue, name))


def words_of(entry: dict[str, Any]) -> str:
    """What a catalogue filter's text is looked for in: the entry's name, its
    display name, category and tags (metadata `tags`, words in one string, as
    TOSCA's metadata holds strings: `tags: "notebook, teaching"`)."""
    meta = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
    return " ".join(str(meta.get(k) or "") for k in ("display_name", "category", "tags")) + " " + entry["name"]


def filtered(entries: list[dict[str, Any]], *, here: bool = False, text: str = "") -> list[dict[str, Any]]:
    """The entries (of `for_caller`) a filter keeps: with `here`, only those
    deployable here; with `text`, those whose words (`words_of`) contain each of
    its words, whatever their case."""
    wanted = text.lower().split()
    return [e for e in entries if not (here and e.get("unfit"))
            and all(w in words_of(e).lower() for w in wanted)]
