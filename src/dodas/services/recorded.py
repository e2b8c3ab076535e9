"""What the state recorded of a deployment, read back: the template it was last
applied with, its plan, and whether the services it started still run.

One home for questions several operations ask (status, outputs, plan, refresh,
scale, the autoscaler), beneath all of them: this module imports no other
operation, so that none of them has to import another to ask.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.engine.states import DeploymentStatus as DS
from dodas.errors import DodasError
from dodas.plan.plan import Plan
from dodas.providers.base import Machine, ProcessRef
from dodas.services import plan_given
from dodas.state.models import Deployment
from dodas.state.store import NotFoundError, Store
from dodas.tosca.inputs import GivenInput


def stored_template(dep: Deployment) -> Path:
    """The template a deployment was last applied with: the user's file if it
    still holds that text, else the copy `up` kept (written again only when it
    is lost: a read-only disk needs none)."""
    kept = paths.data_dir() / "deployments" / paths.component(dep.id) / "template.yaml"
    for p in (Path(dep.template_path), kept):
        try:
            if p.read_text(encoding="utf-8") == dep.template_text:
                return p
        except (OSError, UnicodeDecodeError):
            continue
    paths.write_private(kept, dep.template_text)
    return kept


def stored_template_of(name: str) -> Path:
    """The stored template of a live deployment (for `scale` and `plan NAME`)."""
    dep = Store().require(name)
    if dep.status == DS.DELETE_COMPLETE.value:
        raise NotFoundError(f'deployment "{name}" was destroyed (see `dodas list --all`)')
    return stored_template(dep)


def stored_plan(dep: Deployment) -> Plan:
    """Re-plan a deployment from the template and inputs kept in the state.
    Reading runs no playbook (`up` decided on the template's playbooks when it
    ran) and reads no DODAS_INPUT_ variable (the stored inputs are all there is)."""
    given = {k: GivenInput(v, "<stored inputs>", 1, 1) for k, v in dep.inputs.items()}
    return plan_given(str(stored_template(dep)), given, offline=True, allow_external_playbooks=True,
                      environment=False)


def stored_plan_or_none(dep: Deployment) -> Plan | None:
    """`stored_plan`, or None when the stored template no longer plans (a type
    library that changed since): for comparisons that can do without it."""
    try:
        return stored_plan(dep)
    except DodasError:
        return None


async def alive_by_machine(provider: Any, machines: dict[tuple[str, int], Machine],
                           recorded: dict[tuple[str, int], list[tuple[str, ProcessRef]]]) -> dict[str, bool | None]:
    """Whether each recorded service runs, by its label: one question per machine
    (one ssh login for all its services), machines side by side. None: the host
    does not answer, so unknown, not dead."""
    async def ask(key: tuple[str, int]) -> dict[str, bool | None]:
        refs = recorded[key]
        try:
            alive = await provider.processes_alive(machines[key], [r for _, r in refs])
        except DodasError:
            alive = None
        return {label: None if alive is None else bool(alive.get(r)) for label, r in refs}
    out: dict[str, bool | None] = {}
    for part in await asyncio.gather(*(ask(k) for k in recorded)):
        out.update(part)
    return out
