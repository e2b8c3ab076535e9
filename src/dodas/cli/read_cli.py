"""`dodas list`, `status`, `outputs` and `logs`: reading a deployment, from this
machine's state or through a server (cli/backend.py), printed alike."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from dodas.cli.common import DEGRADED, JsonOpt, NameArg, print_json


def register(app: typer.Typer) -> None:
    app.command("list")(list_)
    app.command()(status)
    app.command()(outputs)
    app.command()(logs)


def list_(all_: Annotated[bool, typer.Option("--all", "-a", help="Also destroyed deployments (DELETE_COMPLETE), "
                                              "kept until `dodas forget NAME`.")] = False,
          json_out: JsonOpt = False) -> None:
    """List deployments (destroyed ones only with --all)."""
    from dodas.cli import render
    from dodas.cli.backend import backend

    deps = backend().list_deployments(all_)
    print_json(deps) if json_out else render.deployments(deps)


def status(name: NameArg, json_out: JsonOpt = False) -> None:
    """A deployment's state, its instances, and whether each service is alive.

    Exits 5 when the deployment is degraded (a service it started is dead), so
    that scripts and monitors see it without parsing the output."""
    from dodas.cli import render
    from dodas.cli.backend import backend

    st = backend().status(name)
    print_json(st) if json_out else render.status(st)
    if st.get("degraded"):
        raise typer.Exit(DEGRADED)


def outputs(name: NameArg,
            key: Annotated[Optional[str], typer.Argument(help="Only this output.", show_default=False)] = None,
            show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Show sensitive outputs "
                                                       "(tokens) instead of masking them.")] = False,
            raw: Annotated[bool, typer.Option("--raw", help="With KEY: print the value alone (a string without "
                                              "quotes, anything else as JSON), for $(dodas outputs NAME KEY "
                                              "--raw).")] = False,
            json_out: JsonOpt = False) -> None:
    """A deployment's outputs (URLs, tokens), or one of them."""
    from dodas.cli import render
    from dodas.cli.backend import backend
    from dodas.services import read

    b = backend()
    if key is not None:
        one = read.output(name, key, show_secrets=show_secrets, source=b)
        if raw:
            value = one["value"]
            sys.stdout.write((value if isinstance(value, str) else json.dumps(value)) + "\n")
        elif json_out:
            print_json({key: {k: v for k, v in one.items() if k != "name"}})
        else:
            typer.echo(f"{key} = {one['value']}")
        return
    if raw:
        from dodas.errors import UsageError
        raise UsageError(f"--raw prints one output: give its KEY (dodas outputs {name} KEY --raw)")
    outs = b.outputs(name, show_secrets)
    print_json(outs) if json_out else render.outputs(outs, name, hint=not show_secrets)


def logs(name: NameArg,
         node: Annotated[Optional[str], typer.Argument(help="Only this node's instances (NODE), or one instance "
                                                       "(NODE\\[i]).", show_default=False)] = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C "
                                                  "(then exit 0), through any later up, scale or destroy.")]
         = False,
         since: Annotated[Optional[str], typer.Option("--since", help="Only events since this long ago (30s, 5m, "
                                                      "1h30m, 2d) or this ISO 8601 time (2026-12-04T10:00:00+01:00; "
                                                      "without an offset, local time).", show_default=False)] = None,
         tail: Annotated[Optional[int], typer.Option("--tail", help="Only the last N events (then, with "
                                                     "--follow, every new one).", show_default=False)] = None,
         json_out: JsonOpt = False) -> None:
    """A deployment's events, oldest first; times in ISO 8601 with their offset."""
    from dodas.cli.backend import backend
    from dodas.services import read

    b = backend()
    start = read.parse_since(since) if since else None
    evs = b.events(name, node, start, tail)
    last = evs[-1]["id"] if evs else 0
    if tail == 0 and follow:  # none of the old ones: follow from the newest
        newest = b.events(name, node, start, 1)
        last = newest[-1]["id"] if newest else 0
    _show(evs, json_out)
    if follow:
        try:
            for e in b.follow(name, node, start, last):
                _show([e], json_out)
        except KeyboardInterrupt:  # Ctrl-C is how following ends: exit 0, as everything asked was shown
            return


def _show(evs: list[dict], json_out: bool) -> None:
    from dodas.cli import render

    for e in evs:
        if json_out:
            sys.stdout.write(json.dumps(e) + "\n")
        else:
            render.event(e)
    sys.stdout.flush()
