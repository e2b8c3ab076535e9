"""What the development issuer knows and hands out: access tokens, refresh
tokens, clients' authentication. NOT FOR PRODUCTION (all of it in memory).

Access tokens are RS256 JWTs with the claims INDIGO IAM and Keycloak put in
theirs (iss, sub, aud, exp, iat, nbf, jti, preferred_username, scope,
client_id and the groups under the configured claim), or, for a client with
`opaque_tokens`, random strings that only introspection can explain. Refresh
tokens rotate: each use gives a new one and retires the old; presenting a
retired one revokes the whole line of tokens it belongs to, which is what a
stolen and replayed refresh token should cost its thief (OAuth 2.0 Security BCP).
Tokens are kept by their SHA-256, never as given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError

from dodas.devissuer.config import Client, DevConfig, User
from dodas.devissuer.keys import ALG, SigningKeys


class OAuthError(Exception):
    """An OAuth error answer: `error` is the RFC's code, `status` the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def scopes_of(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys((value or "").split()))


@dataclass
class Grant:
    """What a refresh token stands for: who, for which client, which scopes."""

    user: User | None
    client_id: str
    scopes: tuple[str, ...]
    family: str
    expires: float


@dataclass
class Opaque:
    claims: dict[str, Any]
    expires: float


@dataclass
class Issuer:
    """The issuer's state; one lock guards every store (a development tool: no contention)."""

    url: str
    cfg: DevConfig
    keys: SigningKeys
    hits: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)  # digest of a used refresh token -> its family
    opaque: dict[str, Opaque] = field(default_factory=dict)
    revoked_jti: set[str] = field(default_factory=set)

    # -- clients -----------------------------------------------------------------------
    def client(self, form: dict[str, str], authorization: str | None, *, confidential: bool = False) -> Client:
        """The client making the request (HTTP Basic or client_id/client_secret in the form)."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic authorization", 401) from None
            cid, sep, sec = raw.partition(":")
            if not sep:
                raise OAuthError("invalid_client", "malformed Basic authorization", 401)
            client_id, secret = unquote(cid), unquote(sec)
        client = self.cfg.clients.get(client_id or "")
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.confidential:
            if secret is None or not hmac.compare_digest(secret.encode(), (client.client_secret or "").encode()):
                raise OAuthError("invalid_client", "client authentication failed", 401)
        elif confidential:
            raise OAuthError("invalid_client", "this endpoint is for confidential clients (with a secret)", 401)
        return client

    # -- access tokens --------------------------------------------------------------------
    def claims_for(self, user: User | None, client: Client, scopes: tuple[str, ...]) -> dict[str, Any]:
        now = int(time.time())
        lifetime = client.access_token_lifetime if client.access_token_lifetime is not None \
            else self.cfg.access_token_lifetime
        claims: dict[str, Any] = {
            "iss": self.url, "sub": user.sub if user else client.client_id, "iat": now, "nbf": now,
            "exp": now + lifetime, "jti": str(uuid.uuid4()), "client_id": client.client_id,
            "scope": " ".join(scopes),
            "preferred_username": user.username if user else client.client_id,
            (client.groups_claim or self.cfg.groups_claim): list(user.groups if user else client.groups),
        }
        audience = client.audience or self.cfg.audience
        if audience:
            claims["aud"] = audience
        return claims

    def sign(self, claims: dict[str, Any], typ: str = "at+jwt") -> str:
        """A JWT of ours; `typ` tells an access token (RFC 9068) from an ID token ("JWT")."""
        key = self.keys.current
        return jwt.encode({"alg": ALG, "typ": typ, "kid": key.kid}, claims, key, algorithms=[ALG])

    def issue(self, user: User | None, client: Client, scopes: tuple[str, ...], *, refresh: bool,
              family: str | None = None, nonce: str | None = None) -> dict[str, Any]:
        """A token response: the access token, and a refresh token when `refresh`."""
        claims = self.claims_for(user, client, scopes)
        if client.opaque_tokens:
            access = secrets.token_urlsafe(32)
            with self.lock:
                self.opaque[digest(access)] = Opaque(claims, claims["exp"])
        else:
            access = self.sign(claims)
        out: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                               "expires_in": claims["exp"] - claims["iat"], "scope": claims["scope"]}
        if refresh:
            token = secrets.token_urlsafe(32)
            with self.lock:
                self.refresh_tokens[digest(token)] = Grant(user, client.client_id, scopes,
                                                           family or secrets.token_hex(8),
                                                           time.time() + self.cfg.refresh_token_lifetime)
            out["refresh_token"] = token
        if user is not None and "openid" in scopes:
            id_claims = {k: claims[k] for k in ("iss", "sub", "iat", "exp", "preferred_username")}
            id_claims["aud"] = client.client_id
            if nonce:
                id_claims["nonce"] = nonce
            out["id_token"] = self.sign(id_claims, typ="JWT")
        return out

    # -- grants ------------------------------------------------------------------------------
    def refresh(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """The refresh_token grant, rotating: the token presented is spent."""
        token = form.get("refresh_token") or ""
        key = digest(token)
        with self.lock:
            grant = self.refresh_tokens.pop(key, None)
            if grant is None:
                family = self.retired.get(key)
                if family is not None:  # a replayed token: end the whole line
                    for k in [k for k, g in self.refresh_tokens.items() if g.family == family]:
                        del self.refresh_tokens[k]
                raise OAuthError("invalid_grant", "the refresh token is not valid (expired, used or revoked)")
            if grant.client_id != client.client_id:
                self.refresh_tokens[key] = grant  # not spent by someone else's attempt
                raise OAuthError("invalid_grant", "the refresh token was issued to another client")
            self.retired[key] = grant.family
            if grant.expires < time.time():
                raise OAuthError("invalid_grant", "the refresh token has expired")
        asked = scopes_of(form.get("scope")) or grant.scopes
        if set(asked) - set(grant.scopes):
            raise OAuthError("invalid_scope", "a refresh cannot widen the scopes granted")
        return self.issue(grant.user, client, asked, refresh=True, family=grant.family)

    def password(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        user = self.cfg.check_password(form.get("username") or "", form.get("password") or "")
        if user is None:
            raise OAuthError("invalid_grant", "wrong username or password")
        scopes = scopes_of(form.get("scope"))
        return self.issue(user, client, scopes, refresh="offline_access" in scopes)

    def client_credentials(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        if not client.confidential:
            raise OAuthError("unauthorized_client", "client_credentials is for clients with a secret")
        return self.issue(None, client, scopes_of(form.get("scope")), refresh=False)

    # -- what a token is -------------------------------------------------------------------
    def inspect(self, token: str) -> dict[str, Any] | None:
        """The claims of an active access token of ours (JWT or opaque), else None."""
        now = time.time()
        if token.count(".") == 2:
            try:
                head = jws.extract_compact(token.encode()).headers()
                key = self.keys.public(head.get("kid"))
                if key is None:
                    return None
                claims = jwt.decode(token, key, algorithms=[ALG]).claims
            except (JoseError, ValueError):
                return None
            if claims.get("iss") != self.url or claims.get("exp", 0) <= now or claims.get("jti") in self.revoked_jti:
                return None
            return claims
        with self.lock:
            entry = self.opaque.get(digest(token))
        return entry.claims if entry and entry.expires > now else None

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662's answer for any token: access or refresh."""
        claims = self.inspect(token)
        if claims is not None:
            return {"active": True, "token_type": "access_token", **claims}
        with self.lock:
            grant = self.refresh_tokens.get(digest(token))
        if grant is not None and grant.expires > time.time():
            return {"active": True, "token_type": "refresh_token", "client_id": grant.client_id, "iss": self.url,
                    "sub": grant.user.sub if grant.user else grant.client_id, "exp": int(grant.expires),
                    "scope": " ".join(grant.scopes)}
        return {"active": False}

    def revoke(self, token: str, client: Client) -> None:
        """RFC 7009: a refresh token or an access token of this client stops working."""
        key = digest(token)
        with self.lock:
            grant = self.refresh_tokens.get(key)
            if grant is not None and grant.client_id == client.client_id:
                del self.refresh_tokens[key]
                self.retired[key] = grant.family
                return
            entry = self.opaque.get(key)
            if entry is not None and entry.claims.get("client_id") == client.client_id:
                del self.opaque[key]
                return
        claims = self.inspect(token)
        if claims is not None and claims.get("client_id") == client.client_id:
            with self.lock:
                self.revoked_jti.add(str(claims.get("jti")))
