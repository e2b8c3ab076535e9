"""The changing commands through a `dodas server` (DODAS_SERVER=URL or --server
URL): `plan`, `up`, `destroy` and `scale` (the reading ones go through
cli/backend.py).

They print what the local commands print: the plan's sections and changes from
its JSON (render_plan.py), progress through the local progress listener fed
from the server's event stream (progress.replay), the same result lines and
JSON. The template is read here and sent as text; inputs are collected by the
one function the local commands use (services.collect_inputs: the same
precedence, the same refusals of a duplicate key or a file given twice), each
sent as it was given: values from files as data, `-i` and DODAS_INPUT_ text for
the server to read as the local loader would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from dodas.cli.backend import connect, stream_broke
from dodas.cli.confirm import confirm
from dodas.client.remote import Remote, RemoteError
from dodas.errors import DodasError

DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE")


def request_body(template: str, pairs: list[str] | None, files: list[str] | None) -> dict[str, Any]:
    """The template's text and its inputs as the server's API takes them. The
    template is read once, within the operator's YAML limits, for its text and
    its declared inputs (model/template.py)."""
    from dodas.model.template import Template
    from dodas.services import collect_inputs

    tpl = Template.read(template)
    given = collect_inputs(pairs, files, declared=set(tpl.input_names))
    return {"template": tpl.text, "inputs": {k: g.value for k, g in given.items() if not g.from_cli},
            "cli_inputs": {k: str(g.value) for k, g in given.items() if g.from_cli},
            "template_name": Path(template).name}


def _plan_body(target: str, name: str | None, pairs: list[str] | None,
               files: list[str] | None) -> tuple[str, dict[str, Any]]:
    """(deployment name, request) of `plan TARGET`: a template file, or (without
    --name) a deployment's name, planned with the template the server keeps."""
    from dodas.services.planning import default_name

    if Path(target).is_file() or name is not None or target.endswith((".yaml", ".yml")):
        return name or default_name(target), request_body(target, pairs, files)
    from dodas.services import collect_inputs
    given = collect_inputs(pairs, files)
    return target, {"inputs": {k: g.value for k, g in given.items() if not g.from_cli},
                    "cli_inputs": {k: str(g.value) for k, g in given.items() if g.from_cli}}


def _warned(p: dict[str, Any]) -> dict[str, Any]:
    """The plan without its warnings, which are shown (or kept for --json) as locally."""
    from dodas.cli.common import warn_located

    p = dict(p)
    warn_located(p.pop("warnings", []))
    return p


def plan(r: Remote, target: str, name: str | None, pairs: list[str] | None, files: list[str] | None,
         json_out: bool, *, provider: str | None = None, refresh: bool = True) -> dict[str, Any]:
    from dodas.cli.render_plan import show

    dep_name, body = _plan_body(target, name, pairs, files)
    p = _warned(r.plan(dep_name, {**body, "provider": provider, "refresh": refresh}))
    show(p, json_out)
    return p


def up(r: Remote, template: str, name: str, pairs: list[str] | None, files: list[str] | None, *, yes: bool,
       quiet: bool, json_out: bool, provider: str | None) -> None:
    from dodas.cli import render
    from dodas.cli.common import MODE, print_json

    body = request_body(template, pairs, files)
    seen = _seen(r, name)
    if seen is not None and seen != "DELETE_COMPLETE":  # the caller's (or their group's): applied again
        p = _warned(r.plan(name, {**body, "refresh": True}))
        confirm(p, f"dodas plan {template} --name {name}", yes=yes, quiet=quiet, json_out=json_out)
        after = _last_event(r, name)  # before the work starts: none missed
        r.apply(name, {**body, "yes": True})
    else:  # a new deployment, or a destroyed one made anew (the server plans it as it takes it: creating never asks)
        after = _last_event(r, name) if seen is not None else 0  # a destroyed one's past is not shown again
        p = _warned(r.create({**body, "name": name, "provider": provider})["plan"])
    follow(r, name, after, quiet or json_out)
    st = r.status(name)
    if st["status"] not in DONE:
        raise DodasError(f'{name}: {st["status"]}: {st.get("reason") or "see dodas logs " + name}')
    outs = r.outputs(name)
    if json_out:
        print_json({"name": name, "status": st["status"], "changed": p["has_changes"],
                    "plan": {"summary": p["summary"], "changes": p["changes"]}, "outputs": outs,
                    "warnings": list(MODE["warnings"])})
    else:
        typer.echo(f"{name}: {st['status']}" + ("" if p["has_changes"] else " (nothing to change)"))
        render.outputs(outs, name)


def _seen(r: Remote, name: str) -> str | None:
    """The status of deployment `name` when the caller may see it, else None. A
    destroyed one (DELETE_COMPLETE) is made anew by an explicit create (the
    server applies nothing to a destroyed deployment)."""
    try:
        return r.status(name).get("status")
    except RemoteError as exc:
        if exc.exit_code == 4:
            return None
        raise


def _last_event(r: Remote, name: str) -> int:
    newest = r.events(name, tail=1)
    return newest[-1]["id"] if newest else 0


def follow(r: Remote, name: str, after: int, quiet: bool) -> None:
    """The deployment's events until its work is done, shown by the listener a
    local run uses; a broken stream is taken up again from the last event."""
    from dodas.cli import progress

    listener = progress.factory(quiet=quiet)
    try:
        for e in r.stream(name, after, on_break=None if quiet else stream_broke):
            progress.replay(listener, e)
    finally:
        listener.close()


def destroy(r: Remote, name: str, yes: bool, quiet: bool, json_out: bool) -> None:
    from dodas.cli.common import print_json
    from dodas.cli.render import plural

    st = r.status(name)
    if not yes:
        if not sys.stdin.isatty() or json_out:
            raise DodasError(f'destroying "{name}" needs confirmation: run with --yes')
        typer.confirm(f'Destroy "{name}" ({plural(len(st["instances"]), "instance")})?', abort=True)
    after = _last_event(r, name)
    r.destroy(name)
    follow(r, name, after, quiet or json_out)
    st = r.status(name)
    if st["status"] != "DELETE_COMPLETE":
        raise DodasError(f'destroying "{name}" left problems: {st.get("reason") or st["status"]}')
    print_json({"name": name, "status": "DELETE_COMPLETE"}) if json_out else typer.echo(f"{name}: DELETE_COMPLETE")


def scale(r: Remote, name: str, node: str, count: int, *, yes: bool, quiet: bool, json_out: bool) -> None:
    """As `scale` locally: the plan first (asking before it deletes instances),
    then the work, followed; the same result lines and JSON."""
    from dodas.cli import render
    from dodas.cli.common import MODE, print_json

    p = _warned(r.scale_plan(name, node, count))
    confirm(p, f"dodas plan {name}", yes=yes, quiet=quiet, json_out=json_out)
    after = _last_event(r, name)
    r.scale(name, node, count)
    follow(r, name, after, quiet or json_out)
    st = r.status(name)
    if st["status"] not in DONE:
        raise DodasError(f'{name}: {st["status"]}: {st.get("reason") or "see dodas logs " + name}')
    outs = r.outputs(name)
    if json_out:
        print_json({"name": name, "status": st["status"], "changed": p["has_changes"],
                    "plan": {"summary": p["summary"], "changes": p["changes"]}, "outputs": outs,
                    "warnings": list(MODE["warnings"])})
    else:
        typer.echo(f"{name}: {st['status']}" + ("" if p["has_changes"] else " (nothing to change)"))
        render.outputs(outs, name)


__all__ = ["RemoteError", "connect", "destroy", "follow", "plan", "request_body", "scale", "up"]
