"""The web dashboard: login with the server's OIDC issuer, the catalogue as
forms, the user's deployments followed live. A face over server/operations.py,
like the REST API: no deployment logic here.

`install(app)` adds its routes under /web and its assets under /web/static
(all shipped in the package: no CDN, the server may be offline).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    from dodas.server.web import elastic, formcost, live, login, pages

    app.include_router(login.router)
    app.include_router(pages.router)
    app.include_router(elastic.router)
    app.include_router(live.router)
    app.include_router(formcost.router)
    app.mount("/web/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="web-static")

    @app.exception_handler(login.NotSignedIn)
    async def not_signed_in(_request: Request, exc: login.NotSignedIn) -> Response:
        from urllib.parse import quote
        return RedirectResponse(f"/web/login?next={quote(exc.next_url, safe='/')}", status_code=303)


def is_page(request: Request) -> bool:
    """Whether an error should be answered as a page (the dashboard's) rather than JSON."""
    return request.url.path.startswith("/web")


def error_page(request: Request, status: int, message: str, details: list[str] | None = None) -> HTMLResponse:
    from dodas.server.web.login import caller_of, current
    from dodas.server.web.pages import render

    session = current(request)
    try:  # the header keeps the user and "Log out", so that an error page does not look signed out
        caller = caller_of(request, session) if session is not None else None
    except Exception:  # noqa: BLE001 - an error page must render whatever made the error
        caller = None
    return render(request, "error.html", code=status, session=session, caller=caller, status_code=status,
                  message=message, details=details or [])
