"""The dashboard's pages: server-rendered HTML over operations.py.

Reading works without a script; static/dashboard.js adds the live parts
(Server-Sent Events from live.py), the in-page checks of the forms and the
reveal-then-mask of secret outputs. Every change is shown as a plan first and
done only when that plan is confirmed: the request waits server-side as a
draft of the session (state/web_sessions.py), so that secret inputs never go
back into a page. Responses are `no-store` and carry a Content-Security-Policy
that allows this server's own scripts and styles only.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dodas.errors import DodasError, TemplateError
from dodas.server import operations as ops
from dodas.server.access import Refused
from dodas.server.web import forms, graph, view, wording
from dodas.server.web.login import check_csrf, signed_in
from dodas.state import web_sessions

PAGE_SIZE = 50
router = APIRouter(prefix="/web", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                      "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"}


def render(request: Request, page_: str, code: int = 200, **context: Any) -> HTMLResponse:
    session = context.pop("session", None)
    caller = context.pop("caller", None)
    response = templates.TemplateResponse(request, page_, {"caller": caller, "csrf": session.csrf if session else "",
                                                          **context}, status_code=code)
    response.headers.update(HEADERS)
    return response


def _cfg(request: Request) -> Any:
    return request.app.state.config


async def posted_form(request: Request) -> dict[str, str]:
    """The posted form, read on the event loop; the route itself runs in a thread
    (planning and reading the state block), and checks the form's CSRF token."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def age(iso: str | None) -> str:
    if not iso:
        return ""
    t = datetime.fromisoformat(iso)
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    s = max(0, (datetime.now(timezone.utc) - t).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit}"
    return f"{int(s)} s"


def prose(text: str | None) -> Any:
    """A template's description as a page shows it: its `code` spans as code,
    its command-line advice in the form's words (wording.py), the rest escaped."""
    import re

    from markupsafe import Markup, escape

    words = str(escape(wording.for_form(" ".join((text or "").split()))))
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", words))


def mib(value: int | None) -> str:
    """Memory as a person reads it: 1 GiB, 512 MiB; "not given" for none."""
    if not value:
        return "not given"
    return f"{round(value / 1024, 1):g} GiB" if value >= 1024 else f"{value} MiB"


templates.env.filters["age"] = age
templates.env.filters["mib"] = mib
templates.env.filters["prose"] = prose


# -- pages ---------------------------------------------------------------------------------------
@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/web/deployments", status_code=303)


@router.get("/signed-out")
def signed_out(request: Request) -> HTMLResponse:
    return render(request, "signed_out.html")


@router.get("/catalogue")
def catalogue(request: Request, show: str = "all", q: str = "", part: str = "") -> HTMLResponse:
    """The catalogue for this user; `show=here` keeps what they can deploy here,
    `q` those whose name, category or tags contain it. `part=cards`: the cards
    alone, for the page's script filtering as one types."""
    session, caller = signed_in(request)
    every = ops.catalogue_for(_cfg(request), caller)
    shown = ops.catalogue_filter(every, here=show == "here", text=q)
    return render(request, "_cards.html" if part == "cards" else "catalogue.html", session=session, caller=caller,
                  entries=shown, total=len(every), show="here" if show == "here" else "all", q=q)


@router.get("/catalogue/{entry}")
def deploy_form(entry: str, request: Request) -> HTMLResponse:
    session, caller = signed_in(request)
    return _deploy_form(request, session, caller, entry, {}, {})


def _deploy_form(request: Request, session: Any, caller: Any, entry: str, values: dict[str, Any],
                 posted: dict[str, str], diagnostics: list | None = None, refusal: str | None = None,
                 status: int = 200) -> HTMLResponse:
    described = ops.catalogue_entry(_cfg(request), entry)
    described["unfit"] = ops.entry_unfit(_cfg(request), caller, entry)
    fields_ = forms.fields(described["inputs"], values)
    general = forms.place(diagnostics or [], fields_)
    errors: dict[str, str] = {}
    if refusal:  # under the field it is about, else above the form
        said = wording.for_form(refusal)
        about = wording.field_of(said, posted.get("provider") or None)
        (errors.__setitem__(about, said) if about else general.append(said))
    name = posted.get("name") or f"{entry}-{secrets.token_hex(2)}"
    return render(request, "deploy.html", code=status, session=session, caller=caller, entry=described,
                  fields=fields_, general=general, name=name, name_error=errors.get("name"),
                  provider_error=errors.get("provider"),
                  cost=ops.form_cost(_cfg(request), caller, entry, values, posted.get("group") or None),
                  providers=ops.providers(_cfg(request), caller), provider=posted.get("provider", ""),
                  groups=sorted(caller.groups), group=posted.get("group", ""))


@router.post("/catalogue/{entry}")
def deploy_plan(entry: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> HTMLResponse:
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    described = ops.catalogue_entry(_cfg(request), entry)
    given = forms.posted(described["inputs"], form)
    name, provider, group = form.get("name", "").strip(), form.get("provider") or None, form.get("group") or None
    shown = {k: v for k, v in given.items() if k not in {i["name"] for i in described["inputs"] if i["secret"]}}
    try:
        dplan = ops.plan_new(_cfg(request), caller, name, ops.Ask(catalogue=entry, cli_inputs=given), provider,
                             group)
    except TemplateError as exc:
        return _deploy_form(request, session, caller, entry, shown, form, exc.diagnostics, status=422)
    except (Refused, DodasError) as exc:
        return _deploy_form(request, session, caller, entry, shown, form, refusal=_message(exc), status=422)
    draft = web_sessions.save_draft(session.id, {"op": "create", "name": name, "catalogue": entry,
                                                 "cli_inputs": given, "provider": provider, "group": group})
    return _plan_page(request, session, caller, name, dplan.to_json(), draft, f"Create {name} from {entry}",
                      ops.cost(_cfg(request), caller, dplan, group))


@router.post("/confirm")
def confirm(request: Request, form: dict[str, str] = Depends(posted_form)) -> Response:
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    d = web_sessions.draft(session.id, form.get("draft", ""), take=True)
    if d is None:
        raise Refused(410, "this plan has expired or was already confirmed: plan again")
    cfg = _cfg(request)
    name = d["name"]
    if d["op"] == "create":
        ops.create(cfg, caller, name, ops.Ask(catalogue=d["catalogue"], cli_inputs=d["cli_inputs"]),
                   group=d.get("group"), provider=d.get("provider"))
    elif d["op"] == "apply":
        ops.apply(cfg, caller, name, ops.Ask(cli_inputs=d["cli_inputs"]), yes=True)
    elif d["op"] == "scale":
        ops.scale(cfg, caller, name, d["node"], int(d["count"]))
    return RedirectResponse(f"/web/deployments/{name}", status_code=303)


def _plan_page(request: Request, session: Any, caller: Any, name: str, plan: dict[str, Any], draft: str,
               title: str, cost: dict[str, Any] | None = None) -> HTMLResponse:
    return render(request, "plan.html", session=session, caller=caller, name=name, plan=ops.plan_json(None, plan),
                  draft=draft, title=title, cost=cost)


@router.get("/deployments")
def deployments(request: Request, page: int = 1, status: str | None = None, destroyed: str = "",
                part: str = "") -> HTMLResponse:
    """The list: what runs now, each row's size and actions; destroyed deployments
    only when asked for. `part=rows`: the table alone, which the page's script
    asks for every few seconds to follow the list without a reload."""
    session, caller = signed_in(request)
    page = max(1, page)
    found = ops.list_page(_cfg(request), caller, status or None, PAGE_SIZE, (page - 1) * PAGE_SIZE,
                          destroyed=bool(destroyed))
    pages = max(1, math.ceil(found["total"] / PAGE_SIZE))
    return render(request, "_rows.html" if part == "rows" else "deployments.html", session=session, caller=caller,
                  items=found["items"], page=page, pages=pages, total=found["total"], status=status or "",
                  destroyed=bool(destroyed), actions=view.row_actions, pending=view.pending_label)


@router.get("/deployments/{name}")
def deployment(name: str, request: Request, node: str | None = None, machine: str | None = None,
               destroy: str = "") -> HTMLResponse:
    """A deployment's page; `machine=NODE[i]` shows that machine's log; `destroy=1` (the list's Destroy) puts
    the focus in its confirmation (autofocus, which a URL with a fragment would turn off)."""
    session, caller = signed_in(request)
    return _deployment_page(request, session, caller, name, node, machine=machine, focus_destroy=bool(destroy))


def _deployment_page(request: Request, session: Any, caller: Any, name: str, node: str | None = None,
                     destroy_error: str | None = None, status: int = 200, machine: str | None = None,
                     focus_destroy: bool = False) -> HTMLResponse:
    return render(request, "deployment.html", code=status, session=session, caller=caller,
                  focus_destroy=focus_destroy,
                  **_deployment_context(request, caller, name, node, destroy_error, machine=machine))


def _deployment_context(request: Request, caller: Any, name: str, node: str | None = None,
                        destroy_error: str | None = None, *, whole: bool = True,
                        machine: str | None = None) -> dict[str, Any]:
    """What the deployment's page shows; without `whole`, only its parts that
    follow the status (outputs, the forms that change it). With `machine`, the
    log is that machine's (`_machines`)."""
    from dodas.server import access

    cfg = _cfg(request)
    st = ops.states(caller, name)
    try:
        outputs = ops.outputs(cfg, caller, name) if st["status"] != "QUEUED" else {}
    except DodasError:
        outputs = {}
    settings = ops.settings(caller, name) if st["status"] not in ("QUEUED", "DELETE_COMPLETE") else {}
    topo = ops.topology(caller, name) if st["status"] != "QUEUED" else None
    out: dict[str, Any] = {
        "name": name, "st": st, "outputs": outputs, "scalable": (settings or {}).get("scalable", {}),
        "operate": access.can_operate(caller, ops.readable(caller, name), cfg), "destroy_error": destroy_error,
        "blocked": view.blocked(st), "destroyed": view.destroyed(st), "ordered_outputs": view.ordered_outputs(outputs)}
    if whole:
        out.update(_machines(caller, name, st, machine))
        lines = out["machine_lines"]
        out.update(graph=graph.svg(topo, graph.node_states(st["instances"]), view.node_labels(st["instances"]))
                   if topo else "",
                   shape=graph.shape(st["instances"]),
                   events=ops.events(name, 0, node=None if lines else node, tail=300, instances=lines),
                   node="" if lines else node or "", progress=view.progress(st, topo), about=ops.about(caller, name),
                   nodes=sorted(set(ops.node_names(caller, name)) | {i["node"] for i in st["instances"]}),
                   owner=ops.owner_of(name),
                   elastic=None if st["status"] in ("QUEUED", "DELETE_COMPLETE") else ops.elastic(caller, name))
    return out


def _machines(caller: Any, name: str, st: dict[str, Any], machine: str | None) -> dict[str, Any]:
    """A deployment page's machines (each with its address, state, provider's id,
    the instances it hosts), what they hold against its owner's quota, and,
    when the page shows one machine's log, that machine and the instances
    whose lines are its log."""
    if st["status"] == "QUEUED":
        return {"machines": [], "held": None, "machine": None, "machine_lines": None}
    found = ops.machines(caller, name)
    chosen = next((m for m in found if m["id"] == machine), None)
    return {"machines": found, "held": ops.held_cost(name, found) if found else None,
            "machine": chosen["id"] if chosen else None,
            "machine_lines": [chosen["id"], *chosen["hosts"]] if chosen else None}


PARTS = {"outputs": "_outputs.html", "change": "_change.html", "machines": "_machines.html", "inputs": "_inputs.html"}


@router.get("/deployments/{name}/parts/{part}")
def deployment_part(name: str, part: str, request: Request) -> HTMLResponse:
    """One part of the deployment's page, drawn again when its status changed."""
    session, caller = signed_in(request)
    if part not in PARTS:
        raise Refused(404, f"no part {part!r}")
    shown = _deployment_context(request, caller, name, whole=False)
    if part == "machines":
        shown.update(_machines(caller, name, shown["st"], None))
    elif part == "inputs":
        shown["about"] = ops.about(caller, name)
    return render(request, PARTS[part], session=session, caller=caller, **shown)


@router.get("/deployments/{name}/graph")
def graph_picture(name: str, request: Request) -> HTMLResponse:
    """The picture alone, for a page whose deployment changed shape (made, scaled)."""
    _, caller = signed_in(request)
    st = ops.states(caller, name)
    topo = ops.topology(caller, name)
    return HTMLResponse(graph.svg(topo, graph.node_states(st["instances"]), view.node_labels(st["instances"]))
                        if topo else "", headers=HEADERS)


@router.post("/deployments/{name}/scale")
def scale_plan(name: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> HTMLResponse:
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    ops.operable(_cfg(request), caller, name)
    node = form.get("node", "")
    try:
        count = int(form.get("count", ""))
        dplan = ops.scale_plan(_cfg(request), caller, name, {node: count})
    except ValueError:
        raise Refused(422, f"the count must be a whole number, 0 or more (got {form.get('count')!r})") from None
    draft = web_sessions.save_draft(session.id, {"op": "scale", "name": name, "node": node, "count": count})
    return _plan_page(request, session, caller, name, dplan.to_json(), draft, f"Scale {node} of {name} to {count}",
                      ops.cost(_cfg(request), caller, dplan, getattr(ops.readable(caller, name), "group", None),
                               replacing=name))


@router.get("/deployments/{name}/inputs")
def inputs_form(name: str, request: Request) -> HTMLResponse:
    session, caller = signed_in(request)
    ops.operable(_cfg(request), caller, name)
    s = ops.settings(caller, name)
    return render(request, "inputs.html", session=session, caller=caller, name=name,
                  fields=forms.fields(s["inputs"], s["values"], keep_secrets=True), general=[])


@router.post("/deployments/{name}/inputs")
def inputs_plan(name: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> HTMLResponse:
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    cfg = _cfg(request)
    ops.operable(cfg, caller, name)
    s = ops.settings(caller, name)
    given = forms.posted(s["inputs"], form, keep_secrets=True)
    try:
        dplan = ops.plan(cfg, caller, name, ops.Ask(cli_inputs=given))
    except TemplateError as exc:
        secret = {i["name"] for i in s["inputs"] if i["secret"]}
        fields_ = forms.fields(s["inputs"], {**s["values"], **{k: v for k, v in given.items() if k not in secret}},
                               keep_secrets=True)
        general = forms.place(exc.diagnostics, fields_)
        return render(request, "inputs.html", code=422, session=session, caller=caller, name=name, fields=fields_,
                      general=general)
    draft = web_sessions.save_draft(session.id, {"op": "apply", "name": name, "cli_inputs": given})
    return _plan_page(request, session, caller, name, dplan.to_json(), draft, f"Update the inputs of {name}")


@router.post("/deployments/{name}/destroy")
def destroy(name: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> Response:
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    if form.get("confirm_name", "").strip() != name:
        return _deployment_page(request, session, caller, name, destroy_error=f'type "{name}" to confirm',
                                status=422)
    ops.destroy(_cfg(request), caller, name)
    return RedirectResponse(f"/web/deployments/{name}", status_code=303)


@router.post("/deployments/{name}/reveal")
def reveal(name: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> Response:
    """A secret output, on an explicit request: as JSON for the page's script
    (which masks it again), or as a page of its own without a script."""
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    key = form.get("output", "")
    values = ops.outputs(_cfg(request), caller, name, show_secrets=True)
    if key not in values:
        raise Refused(404, f'deployment "{name}" has no output "{key}"')
    value = values[key]["value"]
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"output": key, "value": value}, headers={"Cache-Control": "no-store"})
    return render(request, "revealed.html", session=session, caller=caller, name=name, key=key, value=value)


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)
