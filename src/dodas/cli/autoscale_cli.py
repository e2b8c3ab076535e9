"""`dodas autoscale NAME`: an elastic deployment's autoscaler in the foreground,
for users without a server (a server's workers run the same loop). It prints
each decision as it is made and stops on Ctrl-C, giving its lease back."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Annotated, Optional

import typer

from dodas.errors import DodasError


def register(app: typer.Typer) -> None:
    @app.command()
    def autoscale(name: Annotated[str, typer.Argument(help="The elastic deployment.", show_default=False)],
                  once: Annotated[bool, typer.Option("--once", help="Poll and act once, then stop.")] = False,
                  json_out: Annotated[bool, typer.Option("--json", help="Each decision as a line of JSON.")]
                  = False,
                  disable: Annotated[Optional[str], typer.Option(
                      "--disable", help="Set this worker aside ('worker_hosts[2]'): never removed, no new work.",
                      show_default=False)] = None,
                  enable: Annotated[Optional[str], typer.Option(
                      "--enable", help="Give a disabled worker back to the autoscaler.", show_default=False)] = None,
                  drain: Annotated[Optional[str], typer.Option(
                      "--drain", help="Drain this worker, then remove it, at the autoscaler's next decision.",
                      show_default=False)] = None) -> None:
        """Add workers when work waits and remove idle ones, as the deployment's
        elasticity policy says, until interrupted (Ctrl-C); or, with --disable,
        --enable or --drain, set one worker by hand and return."""
        from dodas.services import autoscale as loop

        from dodas.cli.backend import connect, server_url

        asked = [(a, i) for a, i in (("disable", disable), ("enable", enable), ("drain", drain)) if i]
        if len(asked) > 1:
            raise DodasError("give one of --disable, --enable, --drain at a time")
        url = server_url()
        if asked:  # the same operation here or through a server (its REST API)
            if url is not None:
                typer.echo(connect(url).autoscale_control(name, *asked[0]))
                return
            from dodas.services.autoscale_control import control
            typer.echo(control(name, *asked[0]))
            return
        if url is not None:
            raise DodasError("with a server, its workers autoscale elastic deployments: `dodas status NAME` shows "
                             "the decisions (--disable, --enable and --drain work through it)")

        def show(decision: object) -> None:
            if json_out:
                typer.echo(json.dumps({"time": datetime.now().astimezone().isoformat(), "action": decision.action,
                                       "count": decision.count, "remove": list(decision.remove),
                                       "reason": decision.reason}))
            else:
                typer.echo(f"{datetime.now():%H:%M:%S} {decision.action:<6} {decision.reason}")
        stop = threading.Event()
        owner = loop.foreground_owner()
        if not json_out:
            typer.echo(f"autoscaling {name}" + ("" if once else " (Ctrl-C to stop)"), err=True)
        try:
            ended = loop.run(name, owner, stop=stop, on_decision=show, once=once)
            if ended:
                typer.echo(f"stopped: {ended}", err=True)
        except KeyboardInterrupt:
            stop.set()
            typer.echo("stopped", err=True)
