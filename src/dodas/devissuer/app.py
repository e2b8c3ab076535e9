"""The development issuer's FastAPI application. NOT FOR PRODUCTION.

Discovery, the key set, /token (device_code, refresh_token, authorization_code
with PKCE, client_credentials, password), /device_authorization and the /device
page, /authorize, /introspect (RFC 7662, confidential clients), /revoke
(RFC 7009) and /userinfo. Every request is counted by path in `Issuer.hits`,
so that tests can see how often a server fetched the key set.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dodas.devissuer import authorize, device
from dodas.devissuer.config import DevConfig
from dodas.devissuer.keys import ALG, SigningKeys
from dodas.devissuer.pages import BANNER
from dodas.devissuer.tokens import Issuer, OAuthError

GRANTS = ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token", "authorization_code",
          "client_credentials", "password")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def discovery(url: str) -> dict[str, Any]:
    return {
        "issuer": url, "jwks_uri": f"{url}/jwks", "token_endpoint": f"{url}/token",
        "authorization_endpoint": f"{url}/authorize", "device_authorization_endpoint": f"{url}/device_authorization",
        "introspection_endpoint": f"{url}/introspect", "revocation_endpoint": f"{url}/revoke",
        "userinfo_endpoint": f"{url}/userinfo", "grant_types_supported": list(GRANTS),
        "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": [ALG],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["openid", "profile", "email", "offline_access", "groups"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "jti", "nonce", "preferred_username", "groups",
                             "wlcg.groups", "eduperson_entitlement"],
        "description": BANNER,
    }


def _error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="devissuer"'
    return JSONResponse({"error": exc.error, "error_description": exc.description}, exc.status, headers=headers)


async def _form(request: Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items()}


def create_app(url: str, cfg: DevConfig, keys: SigningKeys) -> tuple[FastAPI, Issuer]:
    """The application and the issuer state behind it (tests rotate keys and read hits on it)."""
    issuer = Issuer(url.rstrip("/"), cfg, keys)
    devices = device.Devices(issuer)
    codes = authorize.Codes()
    app = FastAPI(title="dodas development issuer (NOT FOR PRODUCTION)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.issuer = issuer

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        issuer.hits[request.url.path] += 1
        return await call_next(request)

    @app.get("/.well-known/openid-configuration")
    def well_known() -> dict[str, Any]:
        return discovery(issuer.url)

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return keys.jwks()

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = await _form(request)
        try:
            client = issuer.client(form, request.headers.get("authorization"))
            grant = form.get("grant_type")
            if grant == GRANTS[0]:
                req = devices.poll(client.client_id, form.get("device_code") or "")
                answer = issuer.issue(req.user, client, req.scopes, refresh="offline_access" in req.scopes)
            elif grant == "refresh_token":
                answer = issuer.refresh(client, form)
            elif grant == "authorization_code":
                answer = authorize.exchange(issuer, codes, client, form)
            elif grant == "client_credentials":
                answer = issuer.client_credentials(client, form)
            elif grant == "password":
                answer = issuer.password(client, form)
            else:
                raise OAuthError("unsupported_grant_type", f"grant types: {', '.join(GRANTS)}")
        except OAuthError as exc:
            return _error(exc)
        return JSONResponse(answer, headers=NO_STORE)

    @app.post("/introspect")
    async def introspect(request: Request) -> JSONResponse:
        form = await _form(request)
        try:
            issuer.client(form, request.headers.get("authorization"), confidential=True)
        except OAuthError as exc:
            return _error(exc)
        return JSONResponse(issuer.introspect(form.get("token") or ""), headers=NO_STORE)

    @app.post("/revoke")
    async def revoke(request: Request) -> Response:
        form = await _form(request)
        try:
            client = issuer.client(form, request.headers.get("authorization"))
        except OAuthError as exc:
            return _error(exc)
        issuer.revoke(form.get("token") or "", client)
        return Response(status_code=200, headers=NO_STORE)

    @app.api_route("/userinfo", methods=["GET", "POST"])
    def userinfo(request: Request) -> JSONResponse:
        scheme, _, tok = request.headers.get("authorization", "").partition(" ")
        claims = issuer.inspect(tok.strip()) if scheme.lower() == "bearer" else None
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, 401,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        keep = ("sub", "preferred_username", "groups", "wlcg.groups", "eduperson_entitlement")
        return JSONResponse({k: v for k, v in claims.items() if k in keep}, headers=NO_STORE)

    app.include_router(device.router(issuer, devices))
    app.include_router(authorize.router(issuer, codes))
    return app, issuer
