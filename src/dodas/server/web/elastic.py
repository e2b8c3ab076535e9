"""The "Elastic workers" section's buttons: disable, enable or drain one worker,
the same operation as `dodas autoscale NAME --disable ...` and the REST API's
POST /api/v1/deployments/NAME/elastic (services/autoscale_control.py).

A control is done at once (it is small and can be undone: a drained worker is
removed only at the autoscaler's next decision, a disabled one enabled again),
so there is no plan to confirm; the page comes back with what was done said
in the section, and the same sentence is in the deployment's log.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dodas.server import operations as ops
from dodas.server.web.login import check_csrf, signed_in
from dodas.server.web.pages import _deployment_context, posted_form, render

router = APIRouter(prefix="/web", include_in_schema=False)


@router.post("/deployments/{name}/elastic")
def control(name: str, request: Request, form: dict[str, str] = Depends(posted_form)) -> HTMLResponse:
    """Refusals (not operable, destroyed, not elastic, no such worker) are the
    dashboard's error page, as for its other forms."""
    session, caller = signed_in(request)
    check_csrf(request, session, form.get("csrf"))
    done = ops.elastic_control(request.app.state.config, caller, name, form.get("action", ""),
                               form.get("instance", ""))
    return render(request, "deployment.html", session=session, caller=caller, elastic_said=done["said"],
                  **_deployment_context(request, caller, name))
