"""IM's calls on single VMs: their description (RADL), a property, their log,
removing them; and the power and alter calls dodas does not offer, refused in
IM's shape with what to do instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from dodas.server import operations as ops
from dodas.server.access import Caller, Refused
from dodas.server.im import answers, infra, radl, removal, states

router = APIRouter(route_class=answers.IMRoute)
VM = "/infrastructures/{inf_id}/vms/{vm_id}"


def log_text(events: list[dict[str, Any]]) -> str:
    """Events as IM's contextualisation log: one line each, time, instance, level, message."""
    return "".join(f"{e['time']} {e.get('instance') or '-'} {e['level'].upper()}: {e['message']}\n"
                   if e.get("level") not in (None, "info") else
                   f"{e['time']} {e.get('instance') or '-'}: {e['message']}\n" for e in events)


def _described(view: dict[str, Any], inf_id: str, vm_id: str) -> tuple[dict[str, Any], str, str]:
    number, m = infra.machine(view, inf_id, vm_id)
    state = states.machine_state(m, states.deployment_state(view))
    return m, state, radl.vm(m, number, state)


@router.get(VM, summary="One VM, in RADL as IM describes it (JSON when asked: node, state, address)")
async def vm(inf_id: str, vm_id: str, request: Request, caller: Caller = Depends(infra.caller)) -> Response:
    view = await asyncio.to_thread(infra.live, caller, inf_id)
    m, state, text = _described(view, inf_id, vm_id)
    if answers.accepts_json(request):
        return JSONResponse({"id": vm_id, "node": m["node"], "instance": m["id"], "state": state,
                             "address": m.get("address")})
    return PlainTextResponse(text)


@router.get(VM + "/contmsg", summary="The VM's log: the events of its instances and of what runs on it")
async def vm_contmsg(inf_id: str, vm_id: str, request: Request, caller: Caller = Depends(infra.caller)) -> Response:
    def read() -> str:
        view = infra.live(caller, inf_id)
        _, m = infra.machine(view, inf_id, vm_id)
        mine = {m["id"]} | {i["id"] for i in view.get("instances") or [] if i.get("host") == m["id"]}
        return log_text([e for e in ops.events(inf_id) if e.get("instance") in mine])
    return answers.prop(request, "contmsg", await asyncio.to_thread(read))


@router.get(VM + "/{feature}", summary="One feature of the VM's RADL (state, net_interface.0.ip ...)")
async def vm_feature(inf_id: str, vm_id: str, feature: str, request: Request,
                     caller: Caller = Depends(infra.caller)) -> Response:
    view = await asyncio.to_thread(infra.live, caller, inf_id)
    _, _, text = _described(view, inf_id, vm_id)
    features = radl.features(text)
    if feature not in features:
        raise Refused(404, f'VM {vm_id} has no property "{feature[:60]}" (it has {", ".join(features)})')
    return answers.prop(request, feature, features[feature])


@router.delete("/infrastructures/{inf_id}/vms/{vm_list}", summary="Remove the VMs named")
async def remove(inf_id: str, vm_list: str, request: Request, caller: Caller = Depends(infra.caller),
                 context: str | None = Query(None)) -> Response:
    """IM's removeresource: the VMs named, by number, comma separated; the
    others keep their instances (removal.py)."""
    parts = [p.strip() for p in vm_list.split(",")]
    if not all(p.isdigit() for p in parts):
        raise Refused(400, f'"{vm_list[:80]}" is not a comma-separated list of VM numbers')

    def start() -> None:
        view = infra.live(caller, inf_id)
        ops.operable(infra.cfg(request), caller, inf_id)
        ops.not_being_destroyed(inf_id)
        ops.remove_instances(infra.cfg(request), caller, inf_id,
                             removal.chosen(view, [int(p) for p in parts], inf_id))
    await asyncio.to_thread(start)
    await infra.settled(request, inf_id)
    return PlainTextResponse("")


@router.put(VM + "/{operation}", summary="start, stop, reboot one VM: not offered here")
async def vm_power(inf_id: str, vm_id: str, operation: str, caller: Caller = Depends(infra.caller)) -> Response:
    view = await asyncio.to_thread(infra.live, caller, inf_id)
    infra.machine(view, inf_id, vm_id)
    what = f'"{operation[:40]}"' if operation in ("start", "stop", "reboot") else \
        f'"{operation[:40]}" (not one of IM\'s start, stop, reboot)'
    raise Refused(400, f"this server does not {what} single VMs: dodas has no power operations; a lost machine "
                       "is made again by reconfiguring the infrastructure (PUT .../reconfigure)")


@router.put(VM, summary="Altering one VM's features (RADL): not offered here")
async def alter(inf_id: str, vm_id: str, caller: Caller = Depends(infra.caller)) -> Response:
    view = await asyncio.to_thread(infra.live, caller, inf_id)
    infra.machine(view, inf_id, vm_id)
    raise Refused(400, "this server does not alter single VMs (that takes a RADL body, which it does not read): "
                       "change the node's properties in the template and apply it")
