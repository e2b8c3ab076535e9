"""The device authorization grant (RFC 8628) of the development issuer:
`/device_authorization` for the device, the `/device` page for the user, and
the device_code grant of `/token`. NOT FOR PRODUCTION.

The device polls; the answers follow the RFC: `authorization_pending` until the
user acts, `slow_down` when it polls sooner than the interval (which then grows
by 5 seconds, for this request and all later ones), `access_denied` when the
user says no, `expired_token` when the code is too old. A device code is good
for one token response.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from dodas.devissuer import pages
from dodas.devissuer.config import User
from dodas.devissuer.tokens import Issuer, OAuthError, digest, scopes_of

#: user codes avoid vowels (no words) and look-alikes, as RFC 8628 6.1 suggests
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
#: a poll this much sooner than the interval still counts as on time (clocks and sleeps jitter)
TOLERANCE = 0.8


@dataclass
class DeviceRequest:
    client_id: str
    scopes: tuple[str, ...]
    user_code: str
    expires: float
    interval: float
    last_poll: float = 0.0
    state: str = "pending"  # pending, approved, denied
    user: User | None = None


def normal_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


class Devices:
    """Pending device requests, by the digest of their device code and by user code."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.lock = threading.Lock()
        self.by_device: dict[str, DeviceRequest] = {}
        self.by_user: dict[str, str] = {}

    def start(self, client_id: str, scopes: tuple[str, ...]) -> dict[str, Any]:
        cfg = self.issuer.cfg
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice(ALPHABET) for _ in range(8))
        req = DeviceRequest(client_id, scopes, user_code, time.time() + cfg.device_code_lifetime,
                            float(cfg.device_interval))
        with self.lock:
            self.by_device[digest(device_code)] = req
            self.by_user[user_code] = digest(device_code)
        shown = f"{user_code[:4]}-{user_code[4:]}"
        uri = f"{self.issuer.url}/device"
        return {"device_code": device_code, "user_code": shown, "verification_uri": uri,
                "verification_uri_complete": f"{uri}?user_code={quote(shown)}",
                "expires_in": cfg.device_code_lifetime, "interval": cfg.device_interval}

    def poll(self, client_id: str, device_code: str) -> DeviceRequest:
        """The approved request, or the OAuth error that tells the device what to do."""
        key = digest(device_code)
        now = time.time()
        with self.lock:
            req = self.by_device.get(key)
            if req is None or req.client_id != client_id:
                raise OAuthError("invalid_grant", "unknown device code")
            if now > req.expires:
                self._drop(key, req)
                raise OAuthError("expired_token", "the device code has expired: start again")
            if req.state == "denied":
                self._drop(key, req)
                raise OAuthError("access_denied", "the user denied the request")
            too_soon = req.last_poll and now - req.last_poll < req.interval * TOLERANCE
            req.last_poll = now
            if req.state == "approved":
                self._drop(key, req)
                return req
            if too_soon:
                req.interval += 5
                raise OAuthError("slow_down", f"polling too fast: wait {req.interval:.0f} s between polls")
            raise OAuthError("authorization_pending", "the user has not answered yet")

    def answer(self, user_code: str, user: User | None, deny: bool) -> str | None:
        """Record the user's answer; None when done, else what is wrong."""
        with self.lock:
            key = self.by_user.get(normal_code(user_code))
            req = self.by_device.get(key) if key else None
            if req is None or time.time() > req.expires or req.state != "pending":
                return "That code is not valid (mistyped, expired or already used)."
            if deny:
                req.state = "denied"
                return None
            if user is None:
                return "Wrong username or password."
            req.state, req.user = "approved", user
            return None

    def _drop(self, key: str, req: DeviceRequest) -> None:
        self.by_device.pop(key, None)
        self.by_user.pop(req.user_code, None)


def router(issuer: Issuer, devices: Devices) -> APIRouter:
    r = APIRouter()

    @r.post("/device_authorization")
    async def device_authorization(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            client = issuer.client(form, request.headers.get("authorization"))
        except OAuthError as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description}, exc.status)
        return JSONResponse(devices.start(client.client_id, scopes_of(form.get("scope"))),
                            headers={"Cache-Control": "no-store"})

    @r.get("/device", response_class=HTMLResponse)
    def device_page(user_code: str = "") -> HTMLResponse:
        return pages.login_form("/device", {}, user_code=user_code, deny=True)

    @r.post("/device", response_class=HTMLResponse)
    async def device_submit(request: Request) -> HTMLResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        deny = form.get("action") == "deny"
        user = None if deny else issuer.cfg.check_password(form.get("username", ""), form.get("password", ""))
        problem = devices.answer(form.get("user_code", ""), user, deny)
        if problem:
            return pages.login_form("/device", {}, problem, user_code=form.get("user_code", ""), deny=True,
                                    status=400 if "code" in problem else 401)
        return pages.message("Done", "Request denied." if deny else
                             "Signed in: you can return to your device and close this page.")
    return r
