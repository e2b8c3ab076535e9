"""The Infrastructure Manager's REST API under `/im`: IM's requests in, calls of
server/operations.py out, IM's answers back.

An IM infrastructure is a dodas deployment; its id is the deployment's name
(a UUID for those created here; the caller's other deployments are listed by
their names). Its VMs are the deployment's machines, numbered by their position
in dodas's order (node, then index), as `.../vms/N`.

IM's media types: URIs as `text/uri-list` (or `text/plain`), or JSON
(`{"uri-list": [{"uri": ...}]}`, `{"uri": ...}`) when the caller accepts
`application/json`; a property as text, or `{"PROP": ...}`; state and outputs
as JSON. Errors are `{"message", "code"}` in JSON, else the message as text,
with IM's statuses: a template problem is 400 (IM has no 422), 404 what does
not exist or the caller may not read (and a destroyed infrastructure), 409 a
change to one being destroyed, 415 a body that is not TOSCA (RADL is not
supported). The app's own error handlers answer the v1 API's shape, so every
route here answers through `IMRoute`, which catches what operations raise.

Creation and destruction go through the work queue, as everywhere in the
server. IM answers `POST /infrastructures` and `DELETE` once the work is done
unless `async=1`: without it the request waits, up to `WAIT_S`, then answers
anyway (the state tells the rest).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from dodas import __version__
from dodas.errors import DodasError, TemplateError
from dodas.server import access
from dodas.server import operations as ops
from dodas.server.access import Caller, Refused
from dodas.server.im import auth, states

#: how long a call without async=1 waits for its work: then it answers anyway
WAIT_S = 600.0
POLL_S = 0.5
TOSCA_TYPES = {"text/yaml", "text/x-yaml", "application/yaml", "application/x-yaml"}
PROPERTIES = ("state", "outputs", "contmsg", "tosca")


class IMRoute(APIRoute):
    """A route answering errors IM's way: what operations raise (Refused,
    DodasError) and what FastAPI raises for a bad request become `{message,
    code}` or text, with IM's status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answering(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as exc:
                return error(request, 400 if exc.status == 422 else exc.status, exc.message)
            except TemplateError as exc:
                return error(request, 400, exc.message)
            except DodasError as exc:
                status = ops.status_of(exc)
                return error(request, 400 if status == 422 else status, exc.message)
            except RequestValidationError as exc:  # named by place only: never echo what was sent
                where = "; ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
                return error(request, 400, f"the request is not valid ({where})")
        return answering


router = APIRouter(prefix="/im", route_class=IMRoute, tags=["Infrastructure Manager API"])


# -- media types -----------------------------------------------------------------------------
def _accepts_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "").lower()


def error(request: Request, status: int, message: str) -> Response:
    message = ops.public(message)  # never the server's own files
    headers = {"WWW-Authenticate": 'Bearer realm="dodas"'} if status == 401 else None
    if _accepts_json(request):
        return JSONResponse({"message": message, "code": status}, status_code=status, headers=headers)
    return PlainTextResponse(message, status_code=status, headers=headers)


def _uris(request: Request, uris: list[str], headers: dict[str, str] | None = None) -> Response:
    if _accepts_json(request):
        return JSONResponse({"uri-list": [{"uri": u} for u in uris]}, headers=headers)
    return PlainTextResponse("\n".join(uris), media_type=_text_kind(request), headers=headers)


def _text_kind(request: Request) -> str:
    accept = request.headers.get("accept", "").lower()
    return "text/plain" if "text/plain" in accept and "text/uri-list" not in accept else "text/uri-list"


def _property(request: Request, name: str, value: Any, media_type: str = "text/plain") -> Response:
    if _accepts_json(request) or not isinstance(value, str):
        return JSONResponse({name: value})
    return PlainTextResponse(value, media_type=media_type)


def _uri(request: Request, name: str) -> str:
    return str(request.base_url).rstrip("/") + f"{router.prefix}/infrastructures/{name}"


def _tosca_body(request: Request, body: bytes) -> str:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "text/plain":
        raise Refused(415, "RADL is not supported: send a TOSCA template as text/yaml")
    if kind == "application/json":
        raise Refused(415, "RADL-JSON is not supported: send a TOSCA template as text/yaml")
    if kind not in TOSCA_TYPES:
        raise Refused(415, f"a body of type {kind[:80] or '(none)'} is not supported: send a TOSCA template as "
                           "text/yaml, text/x-yaml or application/yaml")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the template is not UTF-8 text") from None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


# -- who, and which infrastructure -------------------------------------------------------------
async def _caller(request: Request) -> Caller:
    return auth.caller(request)


def _cfg(request: Request) -> Any:
    return request.app.state.config


def _live(caller: Caller, name: str) -> dict[str, Any]:
    """The deployment's view, when the caller may read it and it is not destroyed (404 otherwise, as IM)."""
    ops.readable(caller, name)
    view = ops.view(name)
    if states.deployment_state(view) == states.DELETED:
        raise Refused(404, f'infrastructure "{name}" was destroyed')
    return view


async def _settled(request: Request, name: str) -> dict[str, Any]:
    """The deployment's view once no work is queued or running for it, or after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        view = await asyncio.to_thread(ops.view, name)
        if (not view.get("work") and view.get("status") != "QUEUED") or time.monotonic() > deadline \
                or await request.is_disconnected():
            return view
        await asyncio.sleep(POLL_S)


def _vm_uris(request: Request, name: str, view: dict[str, Any]) -> list[str]:
    return [f"{_uri(request, name)}/vms/{n}" for n in range(len(states.machines(view)))]


# -- the calls -------------------------------------------------------------------------------------
@router.get("/version", summary="The server's version, as IM gives its own")
async def version(request: Request) -> Response:
    return _property(request, "version", __version__)


@router.get("/infrastructures", summary="Your infrastructures' URIs (and your groups'; an admin's: all)")
async def list_infrastructures(request: Request, caller: Caller = Depends(_caller)) -> Response:
    items = (await asyncio.to_thread(ops.deployments, caller, None, 1_000_000))["items"]
    return _uris(request, [_uri(request, d["name"]) for d in items if d.get("status") != "DELETE_COMPLETE"])


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


@router.get("/infrastructures/{inf_id}", summary="The infrastructure's VM URIs")
async def vms(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    view = await asyncio.to_thread(_live, caller, inf_id)
    return _uris(request, _vm_uris(request, inf_id, view))


@router.get("/infrastructures/{inf_id}/vms/{vm_id}", summary="One VM: its node, state and address")
async def vm(inf_id: str, vm_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    view = await asyncio.to_thread(_live, caller, inf_id)
    machines = states.machines(view)
    if not vm_id.isdigit() or int(vm_id) >= len(machines):
        raise Refused(404, f'infrastructure "{inf_id}" has no VM {vm_id[:40]}')
    m = machines[int(vm_id)]
    info = {"id": vm_id, "node": m["node"], "instance": m["id"],
            "state": states.machine_state(m, states.deployment_state(view)), "address": m.get("address")}
    if _accepts_json(request):
        return JSONResponse(info)
    return PlainTextResponse("".join(f"{k} = {v if v is not None else ''}\n" for k, v in info.items()))


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
        return "".join(f"{e['time']} {e.get('instance') or '-'} {e['level'].upper()}: {e['message']}\n"
                       if e.get("level") not in (None, "info") else
                       f"{e['time']} {e.get('instance') or '-'}: {e['message']}\n" for e in evs)
    return _property(request, "contmsg", await asyncio.to_thread(read))


@router.get("/infrastructures/{inf_id}/tosca", summary="The infrastructure's TOSCA template")
async def tosca(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    def read() -> str:
        _live(caller, inf_id)
        return ops.template(caller, inf_id)
    return _property(request, "tosca", await asyncio.to_thread(read))


@router.get("/infrastructures/{inf_id}/{prop}", summary="Other IM properties: not offered here")
async def other_property(inf_id: str, prop: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    await asyncio.to_thread(_live, caller, inf_id)
    what = "RADL is not supported" if prop == "radl" else f'"{prop[:40]}" is not a property this server offers'
    raise Refused(400, f"{what} (it offers {', '.join(PROPERTIES)})")


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
    text = _tosca_body(request, await request.body())

    def start() -> None:
        cfg = _cfg(request)
        view = _live(caller, inf_id)
        ops.operable(cfg, caller, inf_id)
        ops.not_being_destroyed(inf_id)
        changed = _changed_counts(view, ops.sent_counts(caller, inf_id, text))
        if changed:  # all planned and held to the quotas together, then queued
            ops.scale_many(cfg, caller, inf_id, changed)
        else:  # IM: a template that changes nothing reconfigures
            ops.reconfigure(cfg, caller, inf_id)
    await asyncio.to_thread(start)
    view = await _settled(request, inf_id) if not _flag(asynchronous) else await asyncio.to_thread(ops.view, inf_id)
    return _uris(request, _vm_uris(request, inf_id, view))


@router.put("/infrastructures/{inf_id}/reconfigure", summary="Apply the infrastructure's own template again")
async def reconfigure(inf_id: str, request: Request, caller: Caller = Depends(_caller),
                      vm_list: str | None = Query(None)) -> Response:
    """IM reconfigures the VMs of `vm_list`; dodas re-checks the whole
    deployment and runs again only what needs it, which covers them."""
    if (await request.body()).strip():
        raise Refused(415, "RADL is not supported: reconfigure takes no body (it applies the infrastructure's own "
                           "template again)")

    def start() -> None:
        _live(caller, inf_id)
        ops.reconfigure(_cfg(request), caller, inf_id)
    await asyncio.to_thread(start)
    return PlainTextResponse("")


@router.api_route("/infrastructures/{inf_id}/vms/{vm_id}/{operation:path}", methods=["GET", "PUT"],
                  summary="VM-level properties and operations: not offered here")
@router.api_route("/infrastructures/{inf_id}/vms/{vm_id}", methods=["PUT", "DELETE"],
                  summary="Altering or removing one VM: not offered here")
@router.put("/infrastructures/{inf_id}/{operation}", summary="Starting and stopping: not offered here")
async def not_offered(inf_id: str, request: Request, caller: Caller = Depends(_caller)) -> Response:
    """dodas changes a deployment as a whole: by its template's counts, or by
    applying it again; it has no call that acts on one chosen machine."""
    await asyncio.to_thread(_live, caller, inf_id)
    raise Refused(400, "this server does not offer operations on single VMs or on the infrastructure's power "
                       "state: change a node's scalable.count (POST the template), or reconfigure")


# -- scalable.count ------------------------------------------------------------------------------
def _changed_counts(view: dict[str, Any], wanted: dict[str, tuple[int, tuple[str, ...]]]) -> dict[str, int]:
    """The nodes whose count in the template sent (`wanted`: count and
    removal_list, ops.sent_counts) differs from the deployment's instances now,
    as CLUES asks IM to add or remove VMs. IM's `removal_list` is accepted only
    when it names the VMs dodas removes anyway (a node's last instances): dodas
    cannot remove chosen ones."""
    now: dict[str, list[dict[str, Any]]] = {}
    for inst in view.get("instances") or []:
        if inst.get("state") != "deleted":
            now.setdefault(inst["node"], []).append(inst)
    machines = [m["id"] for m in states.machines(view)]
    out: dict[str, int] = {}
    for node, (count, removal) in wanted.items():
        have = sorted(now.get(str(node), []), key=lambda i: i["index"])
        if removal:
            last = {str(machines.index(i["id"])) for i in have[count:] if i["id"] in machines}
            if {str(r) for r in removal} != last:
                raise Refused(400, f'node "{node}": dodas removes a node\'s last instances, not chosen VMs: '
                                   f"removal_list may only name {', '.join(sorted(last)) or 'none'}")
        if count != len(have):
            out[str(node)] = count
    return out
