"""The templates a server offers, with their inputs as a form a page or a script
can build from: name, type, default, constraints, description, required, secret.

A catalogue is a directory of TOSCA templates chosen by the operator. Only the
template's own declarations are read here (YAML, positions not needed); whether
a template is valid is for `plan` to say when it is used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dodas.errors import DodasError
from dodas.state.store import NotFoundError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def entries(directory: Path | None) -> list[dict[str, Any]]:
    """Every template of the catalogue, with its description, metadata and inputs."""
    if directory is None or not directory.is_dir():
        return []
    out = []
    for f in sorted(directory.glob("*.yaml")):
        try:
            out.append(describe(f))
        except DodasError:
            continue  # a broken file is the operator's to fix; it is not offered
    return out


def path_of(directory: Path | None, name: str) -> Path:
    """The file of catalogue entry `name` (never a path outside the catalogue)."""
    if directory is not None and NAME.match(name):
        f = directory / f"{name}.yaml"
        if f.is_file():
            return f
    known = ", ".join(e["name"] for e in entries(directory)) or "none"
    raise NotFoundError(f'the catalogue has no template "{name}" (it has: {known})')


def describe(f: Path) -> dict[str, Any]:
    from dodas.tosca.inputs import secret_inputs
    from dodas.tosca.source import load_yaml, read_source

    data, _ = load_yaml(read_source(str(f), "template"), str(f))
    if not isinstance(data, dict):
        raise DodasError(f"{f}: not a template")
    topo = data.get("topology_template") or {}
    declared = topo.get("inputs") or {}
    secret = secret_inputs(declared, data.get("data_types"))
    meta = data.get("metadata") or {}
    return {
        "name": f.stem,
        "description": str(data.get("description") or "").strip(),
        "metadata": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))},
        "inputs": [_input(name, spec, name in secret) for name, spec in declared.items()],
        "outputs": sorted(topo.get("outputs") or {}),
    }


def _input(name: str, spec: Any, secret: bool) -> dict[str, Any]:
    spec = spec if isinstance(spec, dict) else {}
    constraints = []
    for c in spec.get("constraints") or []:
        if isinstance(c, dict) and len(c) == 1:
            (op, value), = c.items()
            constraints.append({"operator": str(op), "value": value})
    out: dict[str, Any] = {
        "name": name, "type": str(spec.get("type") or "string"),
        "description": str(spec.get("description") or "").strip(),
        "required": bool(spec.get("required", True)) and "default" not in spec,
        "secret": secret, "constraints": constraints,
    }
    if "default" in spec and not secret:
        out["default"] = spec["default"]
    if isinstance(spec.get("entry_schema"), dict):
        out["entry_schema"] = {"type": str(spec["entry_schema"].get("type") or "string")}
    return out
