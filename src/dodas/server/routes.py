"""The REST API, version 1: HTTP in, service calls out.

Each route authenticates (app.py's `caller` dependency), checks what the caller
may see and do (access.py), calls one service function and returns its result
as the CLI's `--json` prints it. Mutating calls validate and plan at once (a bad
template is a 422 with located messages, an over-quota request a 403), record
the work and return 202; workers (server/workers.py) carry it out. Deployment
logic lives in services/, never here.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from dodas import paths
from dodas.server import access
from dodas.server.access import Caller, Refused

router = APIRouter(prefix="/api/v1")


class TemplateRequest(BaseModel):
    """A template (its YAML text, or a catalogue entry's name) and inputs."""

    template: str | None = Field(None, description="The template's YAML text.")
    catalogue: str | None = Field(None, description="The name of a catalogue template, instead of `template`.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Input values, as JSON.")
    cli_inputs: dict[str, str] = Field(default_factory=dict, description="Input values as `-i` gives them: "
                                       "text, read as YAML for inputs that are not strings; win over `inputs`.")
    template_name: str | None = Field(None, description="The template's file name, to locate messages in.")


class CreateRequest(TemplateRequest):
    name: str = Field(description="The deployment's name (letters, digits, `.`, `_`, `-`).")
    group: str | None = Field(None, description="One of your groups, whose members may then see it.")
    provider: str | None = Field(None, description="A provider to use instead of the placement's choice.")


class ApplyRequest(TemplateRequest):
    yes: bool = Field(False, description="Apply even when the plan deletes instances or replaces the template.")


class ScaleRequest(BaseModel):
    node: str
    count: int = Field(ge=0)


async def _caller(request: Request) -> Caller:
    """Run on the event loop, not in a thread: with the issuer's keys cached a
    token costs a signature check, less than a hop to the thread pool (an
    unknown key's fetch blocks the loop, at most once per refetch interval)."""
    return request.app.state.caller(request)


def _cfg(request: Request) -> Any:
    return request.app.state.config


# -- reading -------------------------------------------------------------------------
@router.get("/catalogue", summary="The templates this server offers, with their inputs as a form")
def catalogue(request: Request, caller: Caller = Depends(_caller)) -> list[dict[str, Any]]:
    from dodas.services import catalogue as cat
    return cat.entries(_cfg(request).catalogue)


@router.get("/catalogue/{name}", summary="One catalogue template")
def catalogue_entry(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    from dodas.services import catalogue as cat
    return cat.describe(cat.path_of(_cfg(request).catalogue, name))


@router.get("/providers", summary="The providers you may deploy on")
def providers(request: Request, caller: Caller = Depends(_caller)) -> list[dict[str, Any]]:
    from types import SimpleNamespace

    from dodas.services import read
    ok = access.allowed(caller, _cfg(request))
    return [{"name": p["name"], "type": p["type"], "rank": p["rank"]} for p in read.providers()
            if ok(SimpleNamespace(name=p["name"], type=p["type"]))]


@router.get("/deployments", summary="Your deployments (and your groups'; an admin sees all)")
def list_deployments(request: Request, caller: Caller = Depends(_caller), status: str | None = None,
                     limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    from dodas.services import read
    from dodas.state import queue

    visible = set(queue.names_visible_to(caller.key, caller.groups, caller.admin))
    rows = {d["name"]: d for d in read.list_deployments(include_deleted=True) if d["name"] in visible}
    for name in visible - set(rows):  # asked for, not started yet
        rows[name] = {"name": name, "status": "QUEUED", "id": None, "provider": None}
    items = [rows[n] for n in sorted(rows) if status is None or rows[n].get("status") == status]
    return {"total": len(items), "offset": offset, "items": items[offset:offset + limit]}


@router.get("/deployments/{name}", summary="A deployment: its state, instances, attempts and pending work")
def get_deployment(name: str, request: Request, caller: Caller = Depends(_caller)) -> JSONResponse:
    _readable(caller, name)
    return JSONResponse(_view(name))


@router.get("/deployments/{name}/outputs", summary="Outputs; sensitive ones only with show_secrets")
def outputs(name: str, request: Request, caller: Caller = Depends(_caller),
            show_secrets: bool = False) -> dict[str, Any]:
    from dodas.services import read

    acc = _readable(caller, name)
    if show_secrets and not access.can_operate(caller, acc, _cfg(request)):
        raise Refused(403, "sensitive outputs are shown only to those who may operate the deployment")
    return read.outputs(name, show_secrets=show_secrets)


@router.get("/deployments/{name}/events", summary="Events, oldest first, a page at a time")
def events(name: str, request: Request, caller: Caller = Depends(_caller), after: int = Query(0, ge=0),
           limit: int = Query(500, ge=1, le=10_000)) -> dict[str, Any]:
    _readable(caller, name)
    items = _events(name, after)[:limit]
    return {"items": items, "next": items[-1]["id"] if items else after}


@router.get("/deployments/{name}/events/stream", summary="Events as they happen (Server-Sent Events)")
async def event_stream(name: str, request: Request, caller: Caller = Depends(_caller),
                       after: int = Query(0, ge=0)) -> StreamingResponse:
    _readable(caller, name)

    async def stream():  # noqa: ANN202 - an async generator of SSE frames
        last = after
        while not await request.is_disconnected():
            items = await asyncio.to_thread(_events, name, last)
            for e in items:
                last = e["id"]
                yield f"id: {e['id']}\nevent: event\ndata: {json.dumps(e)}\n\n"
            if not items:
                view = await asyncio.to_thread(_view, name)
                if not view.get("work"):  # nothing queued or running: the stream has said everything
                    yield f"event: end\ndata: {json.dumps({'status': view.get('status')})}\n\n"
                    return
                yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)
    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


# -- changing ----------------------------------------------------------------------------
@router.post("/deployments", status_code=202, summary="Create a deployment (planned now, made by a worker)")
def create(body: CreateRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    from dodas.services import jobs, planning
    from dodas.state import queue

    cfg = _cfg(request)
    planning.check_name(body.name)
    if queue.access(body.name) is not None:
        raise Refused(409, f'the name "{body.name}" is taken: choose another')
    if body.group is not None and body.group not in caller.groups and not caller.admin:
        raise Refused(403, f'you are not a member of group "{body.group}"')
    text, dplan = _plan(request, caller, body.name, body, provider=body.provider)
    if dplan.deployment is not None:
        raise Refused(409, f'the name "{body.name}" is taken: choose another')
    _quota(caller, cfg, body.group, dplan, replacing=None)
    if not queue.set_access(body.name, caller.key, caller.username, body.group):
        raise Refused(409, f'the name "{body.name}" is taken: choose another')
    payload = _payload(body.name, text, body, dplan, caller, cfg, provider=body.provider)
    shown = dplan.to_json()  # before a worker may start applying it
    item = queue.enqueue("apply", body.name, payload, caller.key)
    jobs.hand_over(item.id, dplan)
    return {**_view(body.name), "work": [_work(item)], "plan": shown}


@router.post("/deployments/{name}/plan", summary="What applying this template and these inputs would change")
def plan(name: str, body: TemplateRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    """A name nobody holds is planned as a new deployment (`dodas plan T --name NEW`);
    one the caller may not see is a 404, as everywhere."""
    from dodas.state import queue
    from dodas.state.store import Store

    planning_new = queue.access(name) is None and Store().get(name) is None
    if not planning_new:
        _readable(caller, name)
    _, dplan = _plan(request, caller, name, body)
    return dplan.to_json()


@router.post("/deployments/{name}/apply", status_code=202, summary="Apply a new template or inputs")
def apply(name: str, body: ApplyRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    from dodas.state import queue

    acc = _operable(request, caller, name)
    text, dplan = _plan(request, caller, name, body)
    why = dplan.needs_confirmation(interactive=False)
    if why and not body.yes:
        raise Refused(409, f"the plan needs confirmation because {why}: send it again with \"yes\": true")
    _quota(caller, _cfg(request), acc.group if acc else None, dplan, replacing=name)
    item = queue.enqueue("apply", name, _payload(name, text, body, dplan, caller, _cfg(request)), caller.key)
    return {**_view(name), "work": [_work(item)], "plan": dplan.to_json()}


@router.post("/deployments/{name}/scale", status_code=202, summary="Set a node's instance count")
def scale(name: str, body: ScaleRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    from dodas.state import queue

    _operable(request, caller, name)
    item = queue.enqueue("scale", name, {"node": body.node, "count": body.count}, caller.key)
    return {**_view(name), "work": [_work(item)]}


@router.delete("/deployments/{name}", status_code=202, summary="Destroy a deployment (by a worker)")
def destroy(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    from dodas.state import queue

    _operable(request, caller, name)
    item = queue.enqueue("destroy", name, {}, caller.key)
    return {**_view(name), "work": [_work(item)]}


# -- helpers -------------------------------------------------------------------------------
def _readable(caller: Caller, name: str) -> Any:
    """The deployment's access record when the caller may read it; 404 otherwise,
    the same answer as for a name that does not exist."""
    from dodas.state import queue

    acc = queue.access(name)
    if acc is None or not access.can_read(caller, acc):
        raise Refused(404, f'no deployment named "{name}"')
    return acc


def _operable(request: Request, caller: Caller, name: str) -> Any:
    acc = _readable(caller, name)
    if not access.can_operate(caller, acc, _cfg(request)):
        raise Refused(403, f'you may read deployment "{name}" but not change it (its group\'s policy)')
    return acc


def _template_text(request: Request, body: TemplateRequest, name: str) -> str | None:
    from dodas.services import catalogue as cat

    if body.template is not None and body.catalogue is not None:
        raise Refused(422, "give either template or catalogue, not both")
    if body.catalogue is not None:
        return cat.path_of(_cfg(request).catalogue, body.catalogue).read_text(encoding="utf-8")
    return body.template


def _plan(request: Request, caller: Caller, name: str, body: TemplateRequest,
          provider: str | None = None) -> tuple[str, Any]:
    """Plan as `up` would, with a server's rules: only dodas's playbooks, no remote
    imports beyond the bundled library, no fetches into the server's network, only
    the providers the caller may use."""
    from dodas.errors import TemplateError
    from dodas.services import planning, untrusted
    from dodas.state.store import Store
    from dodas.tosca.inputs import GivenInput

    cfg = _cfg(request)
    text = _template_text(request, body, name)
    origin = _origin(body)
    if text is None:  # the deployment's own template
        dep = Store().get(name)
        if dep is None:
            raise Refused(422, "give a template or a catalogue name: the deployment has no template yet")
        text, origin = dep.template_text, dep.template_path
    where = paths.data_dir() / "server" / "requests" / uuid.uuid4().hex
    path = where / "template.yaml"
    paths.write_private(path, text)
    try:
        given = {k: GivenInput(v, "<request inputs>", 1, 1) for k, v in body.inputs.items()}
        given.update({k: GivenInput(v, f"<-i {k}>", 1, 1, from_cli=True) for k, v in body.cli_inputs.items()})
        try:
            refused = untrusted.file_imports(str(path))
            if refused:
                raise TemplateError(refused)
            dplan = planning.prepare(str(path), name=name, given=given, provider_name=provider, offline=True,
                                     allow_external_playbooks=False, refresh=False, environment=False,
                                     allow_provider=access.allowed(caller, cfg), origin=origin)
            problems = untrusted.problems(dplan.plan, str(path), cfg.fetch_allow)
            if problems:
                raise TemplateError(problems)
        except TemplateError as exc:  # located in the caller's file, not the server's copy
            shown = Path(body.template_name or body.catalogue or "template.yaml").name
            raise TemplateError([replace(d, file=shown) if d.file == str(path) else d
                                 for d in exc.diagnostics]) from None
        return text, dplan
    finally:
        paths.remove_tree(where, paths.data_dir() / "server" / "requests")


def _quota(caller: Caller, cfg: Any, group: str | None, dplan: Any, replacing: str | None) -> None:
    """The user's quota over their deployments, and the group's over the group's."""
    from dodas.services import usage
    from dodas.state import queue

    if caller.admin:
        return
    wanted = access.plan_usage(dplan.plan)
    mine = [n for n in queue.names_visible_to(caller.key, frozenset(), False) if n != replacing]
    access.check_quota("user", caller.username, cfg.user_quota, access.Usage(*usage.held(mine)), wanted)
    policy = cfg.groups.get(group or "")
    if group and policy is not None:
        theirs = [n for n in queue.names_visible_to("", frozenset({group}), False) if n != replacing]
        access.check_quota("group", group, policy.quota, access.Usage(*usage.held(theirs)), wanted)


def _origin(body: TemplateRequest) -> str:
    """Where a template sent with a request came from, recorded with the
    deployment: the caller's file name or the catalogue entry (the server only
    ever plans copies, whose paths say nothing)."""
    if body.catalogue is not None:
        return f"catalogue:{body.catalogue}"
    return f"request:{Path(body.template_name or 'template.yaml').name}"


def _payload(name: str, text: str, body: TemplateRequest, dplan: Any, caller: Caller, cfg: Any,
             provider: str | None = None) -> dict:
    """What a worker needs to carry the request out: the template and inputs as
    sent, and the caller's rights at the time of asking (a worker has no caller)."""
    names = access.providers_for(caller, cfg)
    return {"template_text": text, "template_name": Path(body.template_name or f"{name}.yaml").name,
            "inputs": dict(body.inputs), "cli_inputs": dict(body.cli_inputs), "origin": dplan.origin,
            "options": {"provider": provider, "providers": sorted(names) if names is not None else None,
                        "allow_local": cfg.allow_local, "fetch_allow": list(cfg.fetch_allow)}}


def _events(name: str, after: int) -> list[dict[str, Any]]:
    from dodas.services import read
    from dodas.state.store import NotFoundError

    try:
        return read.events(name, after_id=after)[1]
    except NotFoundError:
        return []


def _work(item: Any) -> dict[str, Any]:
    return {"id": item.id, "operation": item.operation, "status": item.status, "error": item.error,
            "created_at": item.created_at.isoformat() if item.created_at else None}


def _view(name: str) -> dict[str, Any]:
    """The deployment as `dodas status --json` shows it, with its pending work."""
    from dodas.services import read
    from dodas.state import queue
    from dodas.state.store import NotFoundError

    try:
        out = read.status(name)
    except NotFoundError:  # asked for, not started yet
        out = {"name": name, "status": "QUEUED", "instances": [], "attempts": []}
    out["work"] = [_work(i) for i in queue.items(deployment_name=name, limit=20)
                   if i.status in ("queued", "running")]
    return out
