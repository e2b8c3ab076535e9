"""The commands that talk to a `dodas server` (DODAS_SERVER=URL or --server URL):
`up`, `plan`, `list`, `status`, `outputs`, `logs`, `destroy` and `scale`.

They print what the local commands print (the same renderers, the same JSON):
only where the answer comes from differs. The template is read here and sent as
text; inputs keep their precedence (DODAS_INPUT_ variables, then --inputs files
in order, then -i), files and variables read on this machine, values parsed by
the server as the local loader would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from dodas.client.remote import Remote, RemoteError
from dodas.errors import DodasError

DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE")


def connect(url: str) -> Remote:
    from dodas.client import tokens

    return Remote(url, lambda: tokens.token_for_server(url))


def request_body(template: str, pairs: list[str] | None, files: list[str] | None) -> dict[str, Any]:
    """The template's text and its inputs as the server's API takes them. The
    template is read once, within the operator's YAML limits, for its text and
    its declared inputs (model/template.py); inputs files through the same loader."""
    from dodas import settings
    from dodas.model.template import Template
    from dodas.services import ENV_PREFIX  # one home for what names an input's variable
    from dodas.yamlsource import read_yaml

    tpl = Template.read(template)
    inputs: dict[str, Any] = {}
    for f in files or []:
        data = read_yaml(f, "inputs file", limits=settings.limits())[0] or {}
        if not isinstance(data, dict):
            raise DodasError(f"{f}: an inputs file is a mapping of input names to values")
        inputs.update(data)
    cli: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DodasError(f'-i "{pair}": give an input as NAME=VALUE')
        cli[key] = value
    for name in tpl.inputs:
        value = os.environ.get(ENV_PREFIX + name)
        if value is not None and name not in inputs and name not in cli:
            cli[name] = value  # the lowest precedence: only where nothing else gives it
    return {"template": tpl.text, "inputs": inputs, "cli_inputs": cli, "template_name": Path(template).name}


def plan(r: Remote, template: str, name: str, pairs: list[str] | None, files: list[str] | None,
         json_out: bool) -> dict[str, Any]:
    from dodas.cli import render_plan

    p = r.plan(name, request_body(template, pairs, files))
    if json_out:
        sys.stdout.write(json.dumps(p, indent=2) + "\n")
    else:
        render_plan.changes(p)
    return p


def up(r: Remote, template: str, name: str, pairs: list[str] | None, files: list[str] | None, *, yes: bool,
       quiet: bool, json_out: bool, provider: str | None) -> None:
    from dodas.cli import render, render_plan
    from dodas.services.planning import confirmation_reason

    body = request_body(template, pairs, files)
    if _live(r, name):  # the caller's (or their group's): applied again, as up does locally
        p = r.plan(name, body)
        person = sys.stdin.isatty() and sys.stdout.isatty() and not json_out
        why = confirmation_reason(p, person)
        if why and not yes:
            if not person:
                raise DodasError(f'the plan for "{name}" needs confirmation because {why}: look at it with '
                                 f"`dodas plan {template} --name {name}`, then run up with --yes")
            render_plan.changes(p)
            if not typer.confirm(f"Apply this plan ({why})?", default=False):
                raise DodasError("not applied: nothing was changed")
        after = max((e["id"] for e in r.events(name)), default=0)  # before the work starts: none missed
        r.apply(name, {**body, "yes": True})
    else:  # a new deployment, or a destroyed one made anew (the server plans it as it takes it: creating never asks)
        p = r.create({**body, "name": name, "provider": provider})["plan"]
        after = 0
    _follow(r, name, after, quiet or json_out)
    st = r.status(name)
    if st["status"] not in DONE:
        raise DodasError(f'{name}: {st["status"]}: {st.get("reason") or "see dodas logs " + name}')
    outs = r.outputs(name)
    if json_out:
        sys.stdout.write(json.dumps({"name": name, "status": st["status"], "changed": p["has_changes"],
                                     "plan": {"summary": p["summary"], "changes": p["changes"]},
                                     "outputs": outs}, indent=2) + "\n")
    else:
        typer.echo(f"{name}: {st['status']}" + ("" if p["has_changes"] else " (nothing to change)"))
        render.outputs(outs, name)


def _live(r: Remote, name: str) -> bool:
    """Whether the caller may see a deployment `name` that is not destroyed: a
    destroyed one is made anew by an explicit create (the server applies nothing
    to a destroyed deployment)."""
    from dodas.client.remote import RemoteError

    try:
        return r.status(name).get("status") != "DELETE_COMPLETE"
    except RemoteError as exc:
        if exc.exit_code == 4:
            return False
        raise


def _follow(r: Remote, name: str, after: int, quiet: bool) -> None:
    from dodas.cli import render

    for e in r.stream(name, after):
        shown = e.get("level") in ("warning", "error") or (e.get("phase") != "state" and e.get("level") == "info")
        if shown and not quiet:
            render.event(e)


def destroy(r: Remote, name: str, yes: bool, quiet: bool, json_out: bool) -> None:
    if not yes:
        if not sys.stdin.isatty() or json_out:
            raise DodasError(f'destroying "{name}" needs confirmation: run with --yes')
        typer.confirm(f'Destroy "{name}"?', abort=True)
    after = max((e["id"] for e in r.events(name)), default=0)
    r.destroy(name)
    _follow(r, name, after, quiet or json_out)
    st = r.status(name)
    if st["status"] != "DELETE_COMPLETE":
        raise DodasError(f'destroying "{name}" left problems: {st.get("reason") or st["status"]}')
    if json_out:
        sys.stdout.write(json.dumps({"name": name, "status": "DELETE_COMPLETE"}, indent=2) + "\n")
    else:
        typer.echo(f"{name}: DELETE_COMPLETE")


def scale(r: Remote, name: str, node: str, count: int, quiet: bool, json_out: bool) -> None:
    after = max((e["id"] for e in r.events(name)), default=0)
    r.scale(name, node, count)
    _follow(r, name, after, quiet or json_out)
    st = r.status(name)
    if st["status"] not in DONE:
        raise DodasError(f'{name}: {st["status"]}: {st.get("reason") or "see dodas logs " + name}')
    if json_out:
        sys.stdout.write(json.dumps({"name": name, "status": st["status"]}, indent=2) + "\n")
    else:
        typer.echo(f"{name}: {st['status']}")


def logs(r: Remote, name: str, follow: bool, json_out: bool) -> None:
    from dodas.cli import render

    events = r.stream(name) if follow else iter(r.events(name))
    for e in events:
        if json_out:
            sys.stdout.write(json.dumps(e) + "\n")
        else:
            render.event(e)
        sys.stdout.flush()


__all__ = ["RemoteError", "connect", "destroy", "logs", "plan", "request_body", "scale", "up"]
