"""The Infrastructure Manager's REST API under `/im`, as IM's own client
(`im_client`, the `imclient` library) and CLUES call it: IM's requests in,
calls of server/operations.py out, IM's answers back. This module holds the
calls on whole infrastructures; vms.py those on single VMs; answers.py IM's
media types and error shape; infra.py how a request's infrastructure is found;
removal.py which VMs may be removed; radl.py the RADL that describes VMs.
Every path under /im that matches no call, or no call with that method, is
answered in IM's shape too (`unmatched` below, registered last).

Statuses as IM's: a template problem is 400, 404 what does not exist or the
caller may not read (and a destroyed infrastructure), 409 a change to one being
destroyed, 415 a body that is not TOSCA.

Creation and destruction go through the work queue, as everywhere in the
server. IM answers `POST /infrastructures` and `DELETE` once the work is done
unless `async=1`: without it the request waits, up to infra.WAIT_S, then
answers anyway (the state tells the rest).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from dodas import __version__
from dodas.errors import DodasError
from dodas.server import access
from dodas.server import operations as ops
from dodas.server.access import Caller, Refused
from dodas.server.im import answers, infra, radl, removal, states
from dodas.server.im import vms as vm_calls
from dodas.server.im.answers import IMRoute
from dodas.server.im.infra import caller as _caller

PROPERTIES = ("state", "outputs", "contmsg", "tosca", "radl")


router = APIRouter(prefix=infra.PREFIX, route_class=IMRoute, tags=["Infrastructure Manager API"])
_uris, _property, _flag, _tosca_body = answers.uris, answers.prop, answers.flag, answers.tosca_body
_live, _settled, _uri, _vm_uris, _cfg = infra.live, infra.settled, infra.uri, infra.vm_uris, infra.cfg
_accepts_json, _text_kind = answers.accepts_json, answers.text_kind


# -- the calls -------------------------------------------------------------------------------------
@router.get("/version", summary="The server's version, as IM gives its own")
async def version(request: Request) -> Response:
    return _property(request, "version", __version__)


@router.get("/infrastructures", summary="Your infrastructures' URIs (and your groups'; an admin's: all)")
async def list_infrastructures(request: Request, caller: Caller = Depends(_caller),
                               flt: str | None = Query(None, alias="filter")) -> Response:
    """IM's `filter` is a regular expression searched in each infrastructure's
    RADL (radl.infrastructure: its name, its nodes): the client's `-n NAME`
    selects by name with it."""
    try:
        pattern = radl.compiled_filter(flt) if flt else None
    except ValueError as exc:
        raise Refused(400, str(exc)) from None

    def listed() -> list[str]:
        items = ops.deployments(caller, None, 1_000_000)["items"]
        names = [d["name"] for d in items if d.get("status") != "DELETE_COMPLETE"]
        if pattern is None:
            return names
        return [n for n in names if pattern.search(_radl_of(caller, n, ops.view(n)))]
    try:
        found = await asyncio.to_thread(listed)
    except ValueError as exc:  # the filter took too long
        raise Refused(400, str(exc)) from None
    return _uris(request, [_uri(request, n) for n in found])


def _radl_of(caller: Caller, name: str, view: dict[str, Any]) -> str:
    try:
        title = ops.infra_name(caller, name)
    except (Refused, DodasError):
        title = None
    return radl.infrastructure(name, title, states.machines(view))


@router.post("/infrastructures", summary="Create an infrastructure from a TOSCA template (text/yaml)")
async def create(request: Request, caller: Caller = Depends(_caller),
                 asynchronous: str | None = Query(None, alias="async"),
                 dry_run: str | None = Query(None)) -> Response:
    if _flag(dry_run):
        raise Refused(400, "dry_run is not supported here: ask the v1 API's plan (POST /api/v1/deployments/NAME/plan)")
    text = _tosca_body(request, await request.body())
    name = str(uuid.uuid4())
    await asyncio.to_thread(ops.create, _cfg(request), caller, name,
                            ops.Ask(template=text, template_name="template.yaml"))
    if not _flag(asynchronous):
        await _settled(request, name)
    uri = _uri(request, name)
    headers = {"InfID": name}
    if _accepts_json(request):
        return JSONResponse({"uri": uri}, headers=headers)
    return PlainTextResponse(uri, media_type=_text_kind(request), headers=headers)


@router.put("/infrastructures", summary="Importing an exported infrastructure: not offered here")
async def import_data(caller: Caller = Depends(_caller)) -> Response:
    raise Refused(400, "importing an infrastructure (PUT /infrastructures) is not offered by this server: "
                       "create it from its TOSCA template (POST /infrastructures)")


@router.post("/infrastructures/{inf_id}/authorization", summary="Changing who owns an infrastructure: not offered")
async def change_auth(inf_id: str, caller: Caller = Depends(_caller)) -> Response:
    await asyncio.to_thread(_live, caller, inf_id)
    raise Refused(400, "changing an infrastructure's owners (POST .../authorization) is not offered by this "
                       "server: share it through a group (the v1 API's deployments take a group)")


@router.get("/infrastructures/{inf_id}", summary="The infrastructure's VM URIs")
async def vms(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    view = await asyncio.to_thread(_live, caller, inf_id)
    return _uris(request, _vm_uris(request, inf_id, view))


@router.get("/infrastructures/{inf_id}/state", summary="The infrastructure's state and its VMs', in IM's words")
async def state(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    view = await asyncio.to_thread(_live, caller, inf_id)
    overall = states.deployment_state(view)
    vm_states = {str(n): states.machine_state(m, overall) for n, m in enumerate(states.machines(view))}
    return JSONResponse({"state": {"state": overall, "vm_states": vm_states}})


@router.get("/infrastructures/{inf_id}/outputs", summary="The template's outputs (sensitive ones only to operators)")
async def outputs(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    def read() -> dict[str, Any]:
        view = _live(caller, inf_id)
        if view.get("id") is None:  # not started yet: nothing to evaluate
            return {}
        cfg = _cfg(request)
        show = access.can_operate(caller, ops.readable(caller, inf_id), cfg)
        try:
            return {k: o["value"] for k, o in ops.outputs(cfg, caller, inf_id, show_secrets=show).items()}
        except DodasError as exc:
            if ops.status_of(exc) != 404:
                raise
            return {}
    return JSONResponse({"outputs": await asyncio.to_thread(read)})


@router.get("/infrastructures/{inf_id}/contmsg", summary="The infrastructure's log: its events, as text")
async def contmsg(inf_id: str, request: Request, caller: Caller = Depends(_caller),
                  headeronly: str | None = Query(None)) -> Response:
    def read() -> str:
        _live(caller, inf_id)
        evs = ops.events(inf_id)
        if _flag(headeronly):  # the infrastructure's own lines, not its VMs'
            evs = [e for e in evs if not e.get("instance")]
        return vm_calls.log_text(evs)
    return _property(request, "contmsg", await asyncio.to_thread(read))


@router.get("/infrastructures/{inf_id}/tosca", summary="The infrastructure's TOSCA template")
async def tosca(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    def read() -> str:
        _live(caller, inf_id)
        return ops.template(caller, inf_id)
    return _property(request, "tosca", await asyncio.to_thread(read))


@router.get("/infrastructures/{inf_id}/radl", summary="The infrastructure described in RADL: name, nodes, counts")
async def radl_property(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    def read() -> str:
        return _radl_of(caller, inf_id, _live(caller, inf_id))
    return _property(request, "radl", await asyncio.to_thread(read))


@router.get("/infrastructures/{inf_id}/{prop}", summary="Other IM properties: not offered here")
async def other_property(inf_id: str, prop: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    await asyncio.to_thread(_live, caller, inf_id)
    if prop == "data":
        raise Refused(400, "exporting an infrastructure (GET .../data) is not offered by this server: its state "
                           "stays in the server's database; its template is GET .../tosca")
    raise Refused(404, f'"{prop[:40]}" is not a property of an infrastructure here (there are '
                       f"{', '.join(PROPERTIES)})")


@router.delete("/infrastructures/{inf_id}", summary="Destroy the infrastructure")
async def destroy(inf_id: str, request: Request, caller: Caller = Depends(_caller),
                  asynchronous: str | None = Query(None, alias="async")) -> Response:
    def start() -> None:
        _live(caller, inf_id)
        ops.destroy(_cfg(request), caller, inf_id)
    await asyncio.to_thread(start)
    if not _flag(asynchronous):
        await _settled(request, inf_id)
    return PlainTextResponse("")


@router.post("/infrastructures/{inf_id}", summary="Add or remove VMs by scalable.count (TOSCA), or reconfigure")
async def change(inf_id: str, request: Request, caller: Caller = Depends(_caller),
                 asynchronous: str | None = Query(None, alias="async")) -> Response:
    """IM's addresource (and CLUES's count changes): the answer lists the VMs
    this call added, none when it removed or reconfigured."""
    text = _tosca_body(request, await request.body())

    def start() -> set[str]:
        cfg = _cfg(request)
        view = _live(caller, inf_id)
        ops.operable(cfg, caller, inf_id)
        ops.not_being_destroyed(inf_id)
        changed, removed = removal.changed(view, ops.sent_counts(caller, inf_id, text), inf_id)
        if removed:  # the VMs a removal_list names, exactly those
            ops.remove_instances(cfg, caller, inf_id, removed)
        if changed:  # all planned and held to the quotas together, then queued
            ops.scale_many(cfg, caller, inf_id, changed)
        if not changed and not removed:  # IM: a template that changes nothing reconfigures
            ops.reconfigure(cfg, caller, inf_id)
        return {m["id"] for m in states.machines(view)}
    before = await asyncio.to_thread(start)
    view = await _settled(request, inf_id) if not _flag(asynchronous) else await asyncio.to_thread(ops.view, inf_id)
    return _uris(request, [f"{_uri(request, inf_id)}/vms/{n}" for n, m in enumerate(states.machines(view))
                           if m["id"] not in before])


@router.put("/infrastructures/{inf_id}/reconfigure", summary="Apply the infrastructure's own template again")
async def reconfigure(inf_id: str, request: Request, caller: Caller = Depends(_caller),
                      vm_list: str | None = Query(None)) -> Response:
    """IM reconfigures the VMs of `vm_list`; dodas re-checks the whole
    deployment and runs again only what needs it, which covers them."""
    body = await request.body()
    sent = _tosca_body(request, body) if body.strip() else None

    def start() -> None:
        _live(caller, inf_id)
        if sent is not None and sent.strip() != ops.template(caller, inf_id).strip():
            raise Refused(400, "the template sent differs from the infrastructure's: reconfigure applies the "
                               "infrastructure's own template again (send none, or the same one); to add or remove "
                               "VMs POST the template to the infrastructure; other changes: the v1 API's apply")
        ops.reconfigure(_cfg(request), caller, inf_id)
    await asyncio.to_thread(start)
    return PlainTextResponse("")


@router.put("/infrastructures/{inf_id}/{operation}", summary="Starting and stopping: not offered here")
async def power(inf_id: str, operation: str, caller: Caller = Depends(_caller)) -> Response:
    """dodas has no power state: machines run while their deployment exists."""
    await asyncio.to_thread(_live, caller, inf_id)
    what = operation[:40] if operation in ("start", "stop") else f'"{operation[:40]}" (IM\'s are start, stop)'
    raise Refused(400, f"this server does not {what} infrastructures: dodas has no power operations (machines run "
                       "while their infrastructure exists; destroy it to stop paying for them)")


router.include_router(vm_calls.router)


@router.api_route("", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"], include_in_schema=False)
@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
                  include_in_schema=False)
async def unmatched(request: Request) -> Response:
    """Any other path or method under /im: IM's 404 or 405 (with Allow), not the
    app's `{"detail"}`. Registered last, so it sees only what nothing else took."""
    allowed = sorted({m for pattern, methods in _calls() if pattern.match(request.url.path) for m in methods})
    path = request.url.path[:120]
    if allowed:
        return answers.error(request, 405, f"{request.method} is not a method of {path} (it takes "
                                           f"{', '.join(allowed)})", headers={"Allow": ", ".join(allowed)})
    return answers.error(request, 404, f"{path} is not a call of this server's IM API (see /docs)")


def _calls() -> list[tuple[re.Pattern[str], set[str]]]:
    """Each IM call's path (as a pattern) and methods, this module's and vms.py's."""
    routes = [(r.path, r.methods) for r in router.routes if isinstance(r, APIRoute) and r.endpoint is not unmatched]
    routes += [(infra.PREFIX + r.path, r.methods) for r in vm_calls.router.routes if isinstance(r, APIRoute)]
    return [(compile_path(path)[0], set(methods)) for path, methods in routes]
