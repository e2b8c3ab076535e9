"""Which infrastructure a request names, and waiting for its work: what every
IM route needs before it answers.

An IM infrastructure is a dodas deployment; its id is the deployment's name
(a UUID for those created here; the caller's other deployments are listed by
their names). Its VMs are the deployment's machines, numbered by their position
in dodas's order (node, then index), as `.../vms/N`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Request

from dodas.server import operations as ops
from dodas.server.access import Caller, Refused
from dodas.server.im import auth, states

PREFIX = "/im"
#: how long a call without async=1 waits for its work: then it answers anyway
WAIT_S = 600.0
POLL_S = 0.5


async def caller(request: Request) -> Caller:
    return auth.caller(request)


def cfg(request: Request) -> Any:
    return request.app.state.config


def live(caller: Caller, name: str) -> dict[str, Any]:
    """The deployment's view, when the caller may read it and it is not destroyed (404 otherwise, as IM)."""
    ops.readable(caller, name)
    view = ops.view(name)
    if states.deployment_state(view) == states.DELETED:
        raise Refused(404, f'infrastructure "{name}" was destroyed')
    return view


async def settled(request: Request, name: str) -> dict[str, Any]:
    """The deployment's view once no work is queued or running for it, or after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        view = await asyncio.to_thread(ops.view, name)
        if (not view.get("work") and view.get("status") != "QUEUED") or time.monotonic() > deadline \
                or await request.is_disconnected():
            return view
        await asyncio.sleep(POLL_S)


def uri(request: Request, name: str) -> str:
    return str(request.base_url).rstrip("/") + f"{PREFIX}/infrastructures/{name}"


def vm_uris(request: Request, name: str, view: dict[str, Any]) -> list[str]:
    return [f"{uri(request, name)}/vms/{n}" for n in range(len(states.machines(view)))]


def machine(view: dict[str, Any], inf_id: str, vm_id: str) -> tuple[int, dict[str, Any]]:
    """VM `vm_id` of the infrastructure (its number and machine): 404 naming it when there is none."""
    machines = states.machines(view)
    if not vm_id.isdigit() or int(vm_id) >= len(machines):
        have = f"0 to {len(machines) - 1}" if machines else "none"
        raise Refused(404, f'infrastructure "{inf_id}" has no VM {vm_id[:40]} (its VMs: {have})')
    return int(vm_id), machines[int(vm_id)]
