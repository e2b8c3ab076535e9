"""The `dodas` command line: argument parsing and rendering only.

Heavy modules (tosca-parser, SQLAlchemy, Ansible) are imported inside the
commands, so that `dodas --help` and shell completion stay fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

import typer

from dodas import __version__

app = typer.Typer(
    name="dodas", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Deploy analysis platforms (Spark + Jupyter, Kubernetes, HTCondor, caches) from a TOSCA "
         "template, on this machine or on any cloud.",
)

TemplateArg = Annotated[str, typer.Argument(help="TOSCA template file (YAML).", show_default=False)]
InputOpt = Annotated[Optional[list[str]], typer.Option(
    "-i", "--input", help="An input value, KEY=VALUE; repeatable. Overrides --inputs.", show_default=False)]
InputsFileOpt = Annotated[Optional[str], typer.Option(
    "--inputs", help="A YAML file of input values.", show_default=False)]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="Never fetch remote imports; refuse those not bundled or cached.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (see docs/PLAN_FORMAT.md).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dodas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """dodas: one TOSCA template, one command, a working platform."""


@app.command()
def validate(template: TemplateArg, input: InputOpt = None, inputs: InputsFileOpt = None,
             offline: OfflineOpt = False, json_out: JsonOpt = False) -> None:
    """Check a template and its inputs; exit 0 when valid, 1 when not."""
    from dodas import services

    p = services.validate(template, input, inputs, offline=offline)
    if json_out:
        _print_json({"valid": True, "template": template, "instances": len(p.instances), "waves": len(p.waves)})
    else:
        typer.echo(f"{template}: valid ({len(p.model.nodes)} nodes, {len(p.instances)} instances, "
                   f"{len(p.waves)} waves)")


@app.command()
def plan(template: TemplateArg, input: InputOpt = None, inputs: InputsFileOpt = None,
         offline: OfflineOpt = False, json_out: JsonOpt = False) -> None:
    """Show what a deployment would create: instances, their needs, waves, deferred values."""
    from dodas import services
    from dodas.cli import render

    p = services.plan(template, input, inputs, offline=offline)
    if json_out:
        _print_json(p.to_json())
    else:
        render.plan(p)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def main() -> None:
    """Entry point: every DodasError becomes its message and exit code, never a traceback.

    Typer runs in standalone mode, so usage errors exit 2 with its own message."""
    from dodas.errors import DodasError, TemplateError

    try:
        app()
    except DodasError as exc:
        if isinstance(exc, TemplateError) and "--json" in sys.argv:
            _print_json({"valid": False, "errors": [d.to_dict() for d in exc.diagnostics]})
            sys.stderr.write(f"{exc.message}\n")
        elif isinstance(exc, TemplateError):
            sys.stderr.write(f"{exc.message}\n")
        else:
            sys.stderr.write(f"error: {exc.message}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("DODAS_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n"
                         "This is a bug in dodas; run again with DODAS_DEBUG=1 for details.\n")
        sys.exit(70)
