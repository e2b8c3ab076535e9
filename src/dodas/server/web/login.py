"""The dashboard's login: OIDC authorization code flow with PKCE (S256) at the
server's issuer, then a session cookie.

The browser is sent to the issuer's authorization endpoint with a random
`state`, a random `nonce` and the S256 challenge of a random verifier, all
recorded server-side (state/web_sessions.py), used once, and bound to the
browser that started the login by a pre-login cookie (`dodas_login`: random,
HttpOnly, SameSite=Lax, ten minutes, kept after a login so that another
tab's login still finishes). Back at /web/callback, a state brought
by a browser without that cookie signs no one in: otherwise an attacker could
stop before the callback and send its URL to a victim, who would then work in
the attacker's account (login CSRF). The code is exchanged with the verifier;
the ID token must carry the login's nonce (a code minted for another login
carries another), and the access token is checked exactly as the API checks one
(app.state.identify: signature, issuer, audience, groups) and then forgotten:
the session keeps who the caller is, never a token. The cookie is
`HttpOnly`, `SameSite=Lax`, `Secure` when the dashboard is served over TLS,
and scoped to /web. Every form posts the session's CSRF token back
(`check_csrf`). A server without issuers (loopback only) signs the local
operator in at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dodas.server import access
from dodas.server.access import Caller, Refused
from dodas.server.auth import AuthError
from dodas.state import web_sessions
from dodas.state.web_sessions import Session

COOKIE = "dodas_session"
#: the pre-login cookie: ties a login's `state` to the browser that started it
LOGIN_COOKIE = "dodas_login"
LOGIN_SECONDS = 600
#: what a pre-login cookie of ours looks like (secrets.token_urlsafe(32))
_BINDER = re.compile(r"[A-Za-z0-9_-]{43}")
router = APIRouter(prefix="/web")


class NotSignedIn(Exception):
    """The page needs a session: the browser is sent to log in, then back to `next`."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def public_url(request: Request) -> str:
    cfg = request.app.state.config
    if cfg.dashboard.public_url:
        return cfg.dashboard.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _secure(request: Request) -> bool:
    return public_url(request).startswith("https://")


def current(request: Request) -> Session | None:
    return web_sessions.session(request.cookies.get(COOKIE))


def caller_of(request: Request, session: Session) -> Caller:
    cfg = request.app.state.config
    if not cfg.authenticated:
        return access.LOCAL
    admin = bool(cfg.admin_group and cfg.admin_group in session.groups)
    return Caller(session.owner, session.username, session.groups, admin)


def signed_in(request: Request) -> tuple[Session, Caller]:
    """The session and caller of a page that needs them, or NotSignedIn."""
    session = current(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(target)
    return session, caller_of(request, session)


def check_csrf(request: Request, session: Session, token: str | None) -> None:
    """A form's CSRF token must be the session's; a cross-site Origin is refused too."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != urlsplit(public_url(request)).netloc:
        raise Refused(403, "this form was sent from another site")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise Refused(403, "the form has expired or was not sent from this dashboard: reload the page and try again")


def _local_path(next_url: str | None) -> str:
    """Where to go after login: a path of the dashboard only (no open redirect)."""
    if next_url and next_url.startswith("/web/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/web/deployments"


def _set_cookie(response: Response, request: Request, value: str, max_age: int, name: str = COOKIE) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/web", httponly=True, samesite="lax",
                        secure=_secure(request))


def _browser(request: Request) -> str:
    """This browser's pre-login value: the one it holds (two logins in two tabs
    both finish), or a new one."""
    held = request.cookies.get(LOGIN_COOKIE) or ""
    return held if _BINDER.fullmatch(held) else secrets.token_urlsafe(32)


def _issuer(request: Request) -> str:
    cfg = request.app.state.config
    return (cfg.dashboard.issuer or cfg.issuers[0].url).rstrip("/")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@router.get("/login", include_in_schema=False)
def login(request: Request, next: str | None = None) -> Response:  # `next`: the query parameter's public name
    cfg = request.app.state.config
    target = _local_path(next)
    if not cfg.authenticated:  # loopback, no issuers: the local operator
        cookie = web_sessions.open_session("local operator", "local", [], cfg.dashboard.session_hours)
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, request, cookie, int(cfg.dashboard.session_hours * 3600))
        return response
    endpoints = request.app.state.validator.endpoints(_issuer(request))
    verifier, challenge = _pkce()
    nonce = secrets.token_urlsafe(16)
    browser = _browser(request)
    state = web_sessions.start_login({"verifier": verifier, "nonce": nonce, "next": target}, browser,
                                     LOGIN_SECONDS)
    query = urlencode({"response_type": "code", "client_id": cfg.dashboard.client_id, "scope": "openid profile",
                       "redirect_uri": public_url(request) + "/web/callback", "state": state, "nonce": nonce,
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    response = RedirectResponse(f"{endpoints['authorization_endpoint']}?{query}", status_code=303)
    _set_cookie(response, request, browser, LOGIN_SECONDS, LOGIN_COOKIE)
    return response


@router.get("/callback", include_in_schema=False)
def callback(request: Request, code: str | None = None, state: str | None = None,
             error: str | None = None, error_description: str | None = None) -> Response:
    cfg = request.app.state.config
    pending = web_sessions.finish_login(state or "", request.cookies.get(LOGIN_COOKIE))
    if pending is None:
        raise Refused(400, "this sign-in cannot be finished here: it was started in another browser, has expired "
                           "or was already used. Nobody was signed in; log in again from this browser")
    if error or not code:
        raise Refused(401, f"the issuer did not log you in: {error_description or error or 'no code was given'}")
    tokens = _exchange(request, code, pending["verifier"])
    caller = request.app.state.identify(tokens["access_token"])  # as the API checks it; then it is forgotten
    try:
        claims = request.app.state.validator.id_token(tokens.get("id_token"), _issuer(request),
                                                      cfg.dashboard.client_id, pending["nonce"])
    except AuthError as exc:
        raise Refused(401, f"the sign-in was refused: {exc.message}. Nobody was signed in; log in again") from None
    if f"{_issuer(request)} {claims['sub']}" != caller.key:
        raise Refused(401, "the sign-in was refused: the ID token and the access token name different users. "
                           "Nobody was signed in; log in again")
    cookie = web_sessions.open_session(caller.key, caller.username, sorted(caller.groups),
                                       cfg.dashboard.session_hours)
    response = RedirectResponse(_local_path(pending.get("next")), status_code=303)
    _set_cookie(response, request, cookie, int(cfg.dashboard.session_hours * 3600))
    return response


def _exchange(request: Request, code: str, verifier: str) -> dict[str, Any]:
    """The issuer's token response for `code`: an access token, and the ID token."""
    cfg = request.app.state.config
    endpoint = request.app.state.validator.endpoints(_issuer(request))["token_endpoint"]
    form: dict[str, Any] = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                            "redirect_uri": public_url(request) + "/web/callback", "client_id": cfg.dashboard.client_id}
    auth = (cfg.dashboard.client_id, cfg.dashboard.client_secret) if cfg.dashboard.client_secret else None
    try:
        r = httpx.post(endpoint, data=form, auth=auth, timeout=15.0, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise Refused(503, f"the issuer cannot be reached to finish the login ({type(exc).__name__})") from None
    try:
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if r.status_code != 200 or not isinstance(body.get("access_token"), str):
        why = body.get("error_description") or body.get("error") or f"HTTP {r.status_code}"
        raise Refused(401, f"the issuer refused the login: {why}")
    return body


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf: str = Form("")) -> Response:
    session = current(request)
    if session is not None:
        check_csrf(request, session, csrf)
        web_sessions.close_session(request.cookies.get(COOKIE))
    response = RedirectResponse("/web/signed-out", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response
