"""The deploy form's "What it would hold", drawn again by the server when a
value of the form changes (static/formcost.js posts the form here), from
services/costs.py, the one home of the figures the plan shows too.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dodas.server import operations as ops
from dodas.server.web import forms
from dodas.server.web.login import check_csrf, signed_in
from dodas.server.web.pages import posted_form, render

router = APIRouter(prefix="/web", include_in_schema=False)


@router.post("/catalogue/{entry}/cost")
def form_cost(entry: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> HTMLResponse:
    """The deploy form's "What it would hold" for the values it has now (its
    secret fields are not sent: they hold no size)."""
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    described = ops.catalogue_entry(request.app.state.config, entry)
    secret = {i["name"] for i in described["inputs"] if i["secret"]}
    given = {k: v for k, v in forms.posted(described["inputs"], form).items() if k not in secret}
    cost = ops.form_cost(request.app.state.config, caller, entry, given, form.get("group") or None)
    return render(request, "_form_cost.html", session=session, caller=caller, cost=cost)
