"""How a plan against the state reads on a terminal: Terraform's shape (a
symbol per action, the reasons under each instance, one summary line). It reads
the plan's JSON form, so a plan from a server shows exactly as a local one."""

from __future__ import annotations

from typing import Any

import typer

SYMBOL = {"create": "+", "reconfigure": "~", "restart": "↻", "delete": "-"}


def summary_line(p: dict[str, Any]) -> str:
    n = p["summary"]
    restart = f"{n['restart']} to restart, " if n["restart"] else ""
    return f"Plan: {n['create']} to create, {n['reconfigure']} to reconfigure, {restart}{n['delete']} to delete."


def elastic_line(pol: dict[str, Any]) -> str:
    """One elasticity policy of a plan's JSON, as `plan` shows it."""
    managed = (f"\n  {pol['node']}: {pol['count']} instance{'s' if pol['count'] != 1 else ''}, a count managed by "
               "the autoscaler (kept in the deployment's state; the template's fixed count is only where it starts)"
               if pol.get("count_managed") and "count" in pol else "")
    return (f"elastic: {pol['node']} {pol['min_instances']}..{pol['max_instances']}, idle {pol['idle_time']:g} s, "
            f"watching {pol['workload']} ({pol['source']}){managed}")


def changes(p: dict[str, Any]) -> None:
    if p.get("policies"):  # a server older than policies sends none
        typer.echo("")
        for pol in p["policies"]:
            typer.echo(elastic_line(pol))
    dep = p["deployment"]
    if not dep["exists"]:
        typer.echo(f'\nDeployment "{dep["name"]}" does not exist yet: up creates it'
                   + (f" on provider {p['provider']}." if p["provider"] else "."))
    else:
        typer.echo(f'\nDeployment "{dep["name"]}" ({dep["status"]}) on provider {p["provider"]}'
                   + ("" if p["refreshed"] else " (as recorded; not refreshed)") + ":")
    if p["provider"] is None:
        typer.echo("  no configured provider can deploy it:")
        for name, problems in p["provider_problems"].items():
            for problem in problems:
                typer.echo(f"    {name}: {problem}")
    elif p["provider_problems"]:
        typer.echo("  providers passed over: " + "; ".join(f"{n} ({'; '.join(pr)})"
                                                         for n, pr in p["provider_problems"].items()))
    if p.get("replaces_template"):
        typer.echo(f"  replaces the deployment made from {p['replaces_template']}")
    if p["changed_inputs"]:
        typer.echo("  inputs changed: " + ", ".join(p["changed_inputs"]))
    if p["kept_inputs"]:
        typer.echo("  inputs kept from the deployment: " + ", ".join(p["kept_inputs"]))
    if dep["exists"]:
        for c in p["changes"]:
            typer.echo(f"  {SYMBOL[c['action']]} {c['instance']:<28} {c['action']}")
            for why in c["reasons"]:
                typer.echo(f"      {why}")
        if not p["has_changes"]:
            typer.echo("  no changes: the deployment matches the template.")
        if p["output_changes"]:
            typer.echo("\nOutputs that would change:")
            for name, o in p["output_changes"].items():
                typer.echo(f"  {name}: {_v(o['before'])} -> {_v(o['after'])}")
    typer.echo("\n" + summary_line(p))


def _v(value: object) -> str:
    return "(none)" if value is None else str(value)
