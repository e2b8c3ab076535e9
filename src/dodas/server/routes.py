"""The REST API, version 1: HTTP in, operation calls out.

Each route authenticates (app.py's `caller` dependency), calls one function of
operations.py (which checks what the caller may see and do) and returns its
result as the CLI's `--json` prints it. Mutating calls validate and plan at
once (a bad template is a 422 with located messages, an over-quota request a
403), record the work and return 202; workers (server/workers.py) carry it out.
Deployment logic lives in services/, never here.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from dodas.server import operations as ops
from dodas.server.access import Caller

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


class PlanRequest(TemplateRequest):
    provider: str | None = Field(None, description="Plan for this provider instead of the placement's choice.")
    refresh: bool = Field(False, description="Ask the provider whether the recorded services still run, as "
                          "`dodas plan` does by default.")


class ScaleRequest(BaseModel):
    node: str
    count: int = Field(ge=0)


class ElasticControlRequest(BaseModel):
    action: str = Field(description="`disable` (never removed, no new work), `enable` (given back to the "
                        "autoscaler) or `drain` (drained, then removed, at the autoscaler's next decision).")
    instance: str = Field(description="One instance of the elastic node, as `status` names it: `worker_hosts[2]`.")


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
    return ops.catalogue(_cfg(request))


@router.get("/catalogue/{name}", summary="One catalogue template")
def catalogue_entry(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.catalogue_entry(_cfg(request), name)


@router.get("/providers", summary="The providers you may deploy on")
def providers(request: Request, caller: Caller = Depends(_caller)) -> list[dict[str, Any]]:
    return ops.providers(_cfg(request), caller)


@router.get("/deployments", summary="Your deployments (and your groups'; an admin sees all)")
def list_deployments(request: Request, caller: Caller = Depends(_caller), status: str | None = None,
                     limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    return ops.deployments(caller, status, limit, offset)


@router.get("/deployments/{name}", summary="A deployment: its state, instances, attempts and pending work")
def get_deployment(name: str, request: Request, caller: Caller = Depends(_caller)) -> JSONResponse:
    ops.readable(caller, name)
    return JSONResponse(ops.view(name))


@router.get("/deployments/{name}/outputs", summary="Outputs; sensitive ones only with show_secrets")
def outputs(name: str, request: Request, caller: Caller = Depends(_caller),
            show_secrets: bool = False) -> dict[str, Any]:
    return ops.outputs(_cfg(request), caller, name, show_secrets)


@router.get("/deployments/{name}/events", summary="Events, oldest first, a page at a time")
def events(name: str, request: Request, caller: Caller = Depends(_caller), after: int = Query(0, ge=0),
           limit: int = Query(500, ge=1, le=10_000),
           node: str | None = Query(None, description="Only this node's instances (NODE) or one instance (NODE[i])."),
           since: datetime | None = Query(None, description="Only events at or after this ISO 8601 time."),
           tail: int | None = Query(None, ge=0, description="Only the last N events.")) -> dict[str, Any]:
    ops.readable(caller, name)
    items = ops.log_events(name, after, node, tail, _aware(since))[:limit]
    return {"items": items, "next": items[-1]["id"] if items else after}


@router.get("/deployments/{name}/events/stream", summary="Events as they happen (Server-Sent Events)")
async def event_stream(name: str, request: Request, caller: Caller = Depends(_caller),
                       after: int = Query(0, ge=0, description="Resume after this event id (as Last-Event-ID)."),
                       node: str | None = Query(None, description="Only this node's (NODE) or instance's events."),
                       follow: bool = Query(False, description="Keep the stream open when no work is left (until "
                                            "the client goes), as `dodas logs -f`; otherwise it ends then."),
                       last_event_id: str | None = Header(None)) -> StreamingResponse:
    ops.readable(caller, name)
    start = max(after, int(last_event_id) if (last_event_id or "").isdigit() else 0)  # a reconnecting client
    if node:
        await asyncio.to_thread(ops.log_events, name, start, node, 0)  # an unknown NODE is refused before streaming

    async def stream():  # an async generator of SSE frames
        last = start
        while not await request.is_disconnected():
            items = await asyncio.to_thread(ops.log_events, name, last, node)
            for e in items:
                last = e["id"]
                yield f"id: {e['id']}\nevent: event\ndata: {json.dumps(e)}\n\n"
            if not items:
                if not follow:
                    view = await asyncio.to_thread(ops.view, name)
                    if not view.get("work"):  # nothing queued or running: the stream has said everything
                        yield f"event: end\ndata: {json.dumps({'status': view.get('status')})}\n\n"
                        return
                yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)
    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/deployments/{name}/kubeconfig", summary="The admin kubeconfig of its Kubernetes cluster (operators)")
def kubeconfig(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return {"name": name, "text": ops.secret_text(_cfg(request), caller, name, "kubeconfig")}


@router.get("/deployments/{name}/spark-conf", summary="A spark-defaults.conf for its Spark cluster (operators)")
def spark_conf(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return {"name": name, "text": ops.secret_text(_cfg(request), caller, name, "spark-defaults.conf")}


def _aware(when: datetime | None) -> datetime | None:
    """A time without an offset is UTC (the CLI sends UTC)."""
    return when.replace(tzinfo=timezone.utc) if when is not None and when.tzinfo is None else when


# -- changing ----------------------------------------------------------------------------
@router.post("/deployments", status_code=202, summary="Create a deployment (planned now, made by a worker)")
def create(body: CreateRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.create(_cfg(request), caller, body.name, _ask(body), group=body.group, provider=body.provider)


@router.post("/deployments/{name}/plan", summary="What applying this template and these inputs would change")
def plan(name: str, body: PlanRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    """A name nobody holds is planned as a new deployment (`dodas plan T --name NEW`);
    one the caller may not see is a 404, as everywhere."""
    return ops.plan_json(ops.plan(_cfg(request), caller, name, _ask(body), body.provider, refresh=body.refresh))


@router.post("/deployments/{name}/apply", status_code=202, summary="Apply a new template or inputs")
def apply(name: str, body: ApplyRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.apply(_cfg(request), caller, name, _ask(body), yes=body.yes)


@router.post("/deployments/{name}/scale", status_code=202, summary="Set a node's instance count")
def scale(name: str, body: ScaleRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.scale(_cfg(request), caller, name, body.node, body.count)


@router.post("/deployments/{name}/scale/plan", summary="What setting a node's instance count would change")
def scale_plan(name: str, body: ScaleRequest, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.plan_json(ops.scale_plan(_cfg(request), caller, name, {body.node: body.count}))


@router.post("/deployments/{name}/elastic", summary="Disable, enable or drain one worker of an elastic node, "
             "as `dodas autoscale NAME --disable/--enable/--drain`")
def elastic_control(name: str, body: ElasticControlRequest, request: Request,
                    caller: Caller = Depends(_caller)) -> dict[str, Any]:
    """409 for a deployment without an elasticity policy (or being destroyed), 422
    for an action or an instance it does not have (the message lists its instances)."""
    return ops.elastic_control(_cfg(request), caller, name, body.action, body.instance)


@router.delete("/deployments/{name}", status_code=202, summary="Destroy a deployment (by a worker)")
def destroy(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.destroy(_cfg(request), caller, name)


@router.post("/deployments/{name}/refresh", summary="Ask the provider what exists and record the drift")
def refresh(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.refresh(_cfg(request), caller, name)


@router.post("/deployments/{name}/forget", summary="Drop the records of a destroyed deployment, freeing its name")
def forget(name: str, request: Request, caller: Caller = Depends(_caller)) -> dict[str, Any]:
    return ops.forget(_cfg(request), caller, name)


def _ask(body: TemplateRequest) -> ops.Ask:
    return ops.Ask(body.template, body.catalogue, dict(body.inputs), dict(body.cli_inputs), body.template_name)
