"""The authorization code grant with PKCE (S256 only) of the development
issuer, for a web dashboard to log in with. NOT FOR PRODUCTION.

The client and its redirect URI are checked before anything else: an error
about them is shown on the issuer's page and never sent to the redirect URI,
which could be anyone's (RFC 6749 4.1.2.1). Codes are one-time and live a
minute; the verifier's S256 must match the challenge in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dodas.devissuer import pages
from dodas.devissuer.config import Client, User
from dodas.devissuer.tokens import Issuer, OAuthError, digest, scopes_of

CODE_LIFETIME = 60.0
FIELDS = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
          "code_challenge_method")
#: RFC 7636 4.1: 43 to 128 unreserved characters
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scopes: tuple[str, ...]
    nonce: str | None
    user: User
    expires: float


class Codes:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[str, Code] = {}

    def new(self, code: Code) -> str:
        value = secrets.token_urlsafe(32)
        with self.lock:
            self.codes[digest(value)] = code
        return value

    def take(self, value: str) -> Code | None:
        with self.lock:
            return self.codes.pop(digest(value), None)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def exchange(issuer: Issuer, codes: Codes, client: Client, form: dict[str, str]) -> dict[str, Any]:
    """The authorization_code grant of /token."""
    code = codes.take(form.get("code") or "")
    if code is None or code.expires < time.time():
        raise OAuthError("invalid_grant", "the code is not valid (expired or already used)")
    if code.client_id != client.client_id or code.redirect_uri != form.get("redirect_uri"):
        raise OAuthError("invalid_grant", "the code was issued to another client or redirect_uri")
    verifier = form.get("code_verifier") or ""
    if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), code.challenge):
        raise OAuthError("invalid_grant", "the PKCE code_verifier does not match the challenge")
    return issuer.issue(code.user, client, code.scopes, refresh="offline_access" in code.scopes, nonce=code.nonce)


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(uri + sep + urlencode(params), status_code=303)


def _check(issuer: Issuer, q: dict[str, str]) -> tuple[Client | None, Response | None]:
    """The client, or the response that refuses the request."""
    client = issuer.cfg.clients.get(q.get("client_id", ""))
    if client is None or q.get("redirect_uri") not in client.redirect_uris:
        return None, pages.message("Invalid request", "Unknown client, or a redirect_uri it did not register.",
                                   400)
    redirect = q["redirect_uri"]
    state = {"state": q["state"]} if q.get("state") else {}
    if q.get("response_type") != "code":
        return None, _redirect(redirect, {"error": "unsupported_response_type", **state})
    if q.get("code_challenge_method") != "S256" or not re.fullmatch(r"[A-Za-z0-9_-]{43}",
                                                                     q.get("code_challenge", "")):
        return None, _redirect(redirect, {"error": "invalid_request", "error_description":
                                          "PKCE with code_challenge_method=S256 is required", **state})
    return client, None


def router(issuer: Issuer, codes: Codes) -> APIRouter:
    r = APIRouter()

    @r.get("/authorize", response_class=HTMLResponse)
    def authorize(request: Request) -> Response:
        q = {k: v for k, v in request.query_params.items() if k in FIELDS}
        _client, refusal = _check(issuer, q)
        return refusal or pages.login_form("/authorize", q)

    @r.post("/authorize", response_class=HTMLResponse)
    async def authorize_submit(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        q = {k: v for k, v in form.items() if k in FIELDS}
        client, refusal = _check(issuer, q)
        if refusal or client is None:
            return refusal or pages.message("Invalid request", "Unknown client.", 400)
        user = issuer.cfg.check_password(form.get("username", ""), form.get("password", ""))
        if user is None:
            return pages.login_form("/authorize", q, "Wrong username or password.", status=401)
        value = codes.new(Code(client.client_id, q["redirect_uri"], q["code_challenge"],
                               scopes_of(q.get("scope")), q.get("nonce"), user, time.time() + CODE_LIFETIME))
        return _redirect(q["redirect_uri"], {"code": value, **({"state": q["state"]} if q.get("state") else {})})
    return r
