"""What the command modules of the CLI share: the options every command spells
the same way (--json, NAME), and how a result is printed as JSON with the
warnings gathered on the way. One home, so that a command moved to another
module prints exactly as before."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

#: set by --json (through its callback) before a command runs: warnings then go into the
#: JSON output, and errors are printed as JSON on stderr (app.main)
MODE: dict = {"json": False, "warnings": []}


def _json_mode(value: bool) -> bool:
    if value:
        MODE["json"] = True
    return value


TemplateArg = Annotated[str, typer.Argument(help="TOSCA template file (YAML).", show_default=False)]
InputOpt = Annotated[Optional[list[str]], typer.Option(
    "-i", "--input", help="An input value, KEY=VALUE; repeatable. Wins over --inputs files and DODAS_INPUT_<KEY> "
                          "environment variables.", show_default=False)]
InputsFileOpt = Annotated[Optional[list[str]], typer.Option(
    "--inputs", "-f", help="A YAML file of input values; repeatable, a later file wins (as Helm's -f). Precedence, "
                           "lowest first: DODAS_INPUT_<name> environment variables, --inputs files in order, -i.",
    show_default=False)]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="Never fetch remote imports; refuse those not bundled or cached.")]
RemoveOpt = Annotated[Optional[list[str]], typer.Option(
    "--remove", help="Remove this instance, NODE[INDEX] (e.g. 'worker_hosts[3]'); repeatable. The node's count "
                     "drops by one and its other instances keep their indexes and machines.", show_default=False)]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Refuse what is only warned about (a duplicate key, a value read as its declared type, "
                     "an outdated version; in validate, what plan and up refuse for safety).")]
ExternalPlaybooksOpt = Annotated[bool, typer.Option(
    "--allow-external-playbooks", help="Run playbooks from outside dodas's own and the template's directory "
                                       "(other paths, http(s) URLs).")]
JsonOpt = Annotated[bool, typer.Option("--json", callback=_json_mode, help="Machine-readable output (see "
                                       "docs/PLAN_FORMAT.md); errors too, as JSON on stderr.")]


def complete_names(incomplete: str) -> list[str]:
    """Shell completion of a deployment NAME: the state's names, or (DODAS_SERVER)
    those the server shows the caller; silent on any error."""
    try:
        from dodas.cli.backend import backend, server_url
        if server_url():
            return sorted(d["name"] for d in backend().list_deployments(False) if d["name"].startswith(incomplete))
        from dodas.services import read
        return read.deployment_names(incomplete)
    except BaseException:  # noqa: BLE001 - a completion never shows an error
        return []


NameArg = Annotated[str, typer.Argument(help="Deployment name.", show_default=False,
                                        autocompletion=complete_names)]
#: `dodas status` exit code of a deployment with a dead service (README, "Exit codes")
DEGRADED = 5


def warn(p: object) -> None:
    """A plan's warnings on stderr; under --json, kept for the JSON output instead (print_json)."""
    for w in getattr(getattr(p, "model", None), "warnings", []):
        if MODE["json"]:
            MODE["warnings"].append(str(w))
        else:
            sys.stderr.write(f"{w.file}:{w.line}:{w.col}: warning: {w.message}\n")


def warn_located(warnings: list[dict]) -> None:
    """Warnings as a server's plan sends them ({file, line, col, message}), shown or kept as warn() does."""
    for w in warnings:
        where = f"{w['file']}:{w['line']}:{w['col']}"
        if MODE["json"]:
            MODE["warnings"].append(f"{where}: {w['message']}")
        else:
            sys.stderr.write(f"{where}: warning: {w['message']}\n")


def print_json(data: object) -> None:
    if isinstance(data, dict) and MODE["warnings"] and "warnings" not in data:
        data = {**data, "warnings": list(MODE["warnings"])}
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
