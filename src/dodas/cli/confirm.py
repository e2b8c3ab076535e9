"""The question `up` and `scale` ask before a plan that deletes or replaces
(and, on a terminal, before any change to an existing deployment): one home
for local and remote runs, reading the plan's JSON form."""

from __future__ import annotations

import sys
from typing import Any

import typer

from dodas.errors import DodasError


def confirm(p: dict[str, Any], how_to_look: str, *, yes: bool, quiet: bool, json_out: bool) -> None:
    """Show the plan's changes and ask where services.planning.confirmation_reason
    says so; without a terminal, refuse (exit 1) naming how to look at the plan.
    Changes to an existing deployment that need no question are shown."""
    from dodas.cli import render_plan
    from dodas.services.planning import confirmation_reason

    name = p["deployment"]["name"]
    person = sys.stdin.isatty() and sys.stdout.isatty() and not json_out
    why = confirmation_reason(p, person)
    if why and not yes:
        if not person:
            raise DodasError(f'the plan for "{name}" needs confirmation because {why}: look at it with '
                             f"`{how_to_look}`, then run it again with --yes")
        if not quiet:
            render_plan.changes(p)
        if not typer.confirm(f"Apply this plan ({why})?", default=False):
            raise DodasError("not applied: nothing was changed")
    elif p["has_changes"] and not quiet and not json_out and p["deployment"]["exists"]:
        render_plan.changes(p)
