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
    """One entry: the template's description, metadata, declared inputs (as the
    model reads them: model/template.py) and output names."""
    from dodas.model.template import Template

    tpl = Template.read(str(f))
    if not isinstance(tpl.source.data, dict):
        raise DodasError(f"{f}: not a template")
    return {
        "name": f.stem,
        "description": tpl.description,
        "metadata": tpl.metadata,
        "inputs": [i.to_json() for i in tpl.inputs.values()],
        "outputs": tpl.output_names,
    }
