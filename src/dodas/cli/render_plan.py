"""How a plan against the state reads on a terminal: Terraform's shape
(a symbol per action, the reasons under each instance, one summary line)."""

from __future__ import annotations

import typer

from dodas.plan import diff
from dodas.services.planning import DeploymentPlan

SYMBOL = {diff.CREATE: "+", diff.RECONFIGURE: "~", diff.RESTART: "↻", diff.DELETE: "-"}


def summary_line(p: DeploymentPlan) -> str:
    n = p.summary()
    restart = f"{n[diff.RESTART]} to restart, " if n[diff.RESTART] else ""
    return (f"Plan: {n[diff.CREATE]} to create, {n[diff.RECONFIGURE]} to reconfigure, {restart}"
            f"{n[diff.DELETE]} to delete.")


def changes(p: DeploymentPlan) -> None:
    dep = p.deployment
    if dep is None:
        typer.echo(f'\nDeployment "{p.name}" does not exist yet: up creates it'
                   + (f" on provider {p.provider}." if p.provider else "."))
    else:
        typer.echo(f'\nDeployment "{p.name}" ({dep.status}) on provider {dep.provider}'
                   + ("" if p.refreshed else " (as recorded; not refreshed)") + ":")
    if p.provider is None:
        typer.echo("  no configured provider can deploy it:")
        for name, problems in p.skipped:
            for problem in problems:
                typer.echo(f"    {name}: {problem}")
    elif p.skipped:
        typer.echo("  providers passed over: " + "; ".join(f"{n} ({'; '.join(pr)})" for n, pr in p.skipped))
    if p.replaces_template:
        typer.echo(f"  replaces the deployment made from {p.replaces_template}")
    if p.changed_inputs:
        typer.echo("  inputs changed: " + ", ".join(p.changed_inputs))
    if p.kept_inputs:
        typer.echo("  inputs kept from the deployment: " + ", ".join(p.kept_inputs))
    if dep is not None:
        for c in p.changes:
            typer.echo(f"  {SYMBOL[c.action]} {c.instance:<28} {c.action}")
            for why in c.reasons:
                typer.echo(f"      {why}")
        if not p.has_changes():
            typer.echo("  no changes: the deployment matches the template.")
    if p.outputs and dep is not None:
        typer.echo("\nOutputs that would change:")
        for name, o in p.outputs.items():
            typer.echo(f"  {name}: {_v(o['before'])} -> {_v(o['after'])}")
    typer.echo("\n" + summary_line(p))


def _v(value: object) -> str:
    return "(none)" if value is None else str(value)
