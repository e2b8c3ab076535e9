"""Who is calling: OIDC access tokens checked as INDIGO IAM, EGI Check-in and
Keycloak issue them.

A caller is identified by their issuer and subject (`Identity.key`), never by a
user name, which two issuers may both give out. Only issuers in the operator's
allow-list are trusted; their keys come from the issuer's own discovery document
(`{iss}/.well-known/openid-configuration` -> `jwks_uri`) and are kept, decoded,
in memory: validating a token whose key is known is a signature check and a few
comparisons, with no request (bench/bench_auth.py). An unknown `kid` (the issuer
rotated its key) fetches the key set again, at most once per `jwks_min_refresh`
seconds per issuer, so that a flood of made-up kids cannot turn the server into
a load generator against the issuer.

Only asymmetric signatures are accepted, from the issuer's algorithm list:
never `none`, never HS* (an HMAC "signed" with the issuer's *public* key is the
classic confusion attack). Opaque tokens (not a JWT; some IAM and Keycloak set-ups
issue them) are asked about at the issuer's introspection endpoint (RFC 7662)
when the operator turned that on for the issuer.

Statuses: 401 when the token does not prove who the caller is (garbage, expired,
bad signature, unknown issuer or key), 403 when it does but the caller may not
use this server (no groups where the operator requires them), 503 when the issuer
cannot be reached to check. Messages never quote the token.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from dodas.errors import DodasError

#: what tokens may be signed with: asymmetric only (an HMAC secret would have to be
#: shared with every server, and HS256 "signed" with a public key is an attack)
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
#: the key type each family of algorithms verifies with
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
GROUP_CLAIMS = ("groups", "wlcg.groups", "eduperson_entitlement")
#: how long a discovery document is trusted before it is read again
DISCOVERY_TTL = 3600.0
#: a JWT is at most this long: anything larger is refused before it is parsed
MAX_TOKEN = 16384


class AuthError(Exception):
    """A request whose token does not let it in; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. `key` (issuer and subject) is what owns things."""

    issuer: str
    subject: str
    username: str
    groups: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.issuer} {self.subject}"


@dataclass
class IssuerConfig:
    """One trusted issuer, as the operator configures it (server.yaml `issuers:`)."""

    url: str
    audience: str | None = None
    groups_claim: str = "groups"
    algorithms: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
    introspection: bool = False
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)  # never in a repr, so never in a log
    require_groups: bool = False

    def __post_init__(self) -> None:
        self.url = normalise(self.url)
        if not self.url.startswith(("https://", "http://")):
            raise DodasError(f"issuer {self.url!r}: an issuer is an http(s) URL")
        if self.groups_claim not in GROUP_CLAIMS:
            raise DodasError(f"issuer {self.url}: groups_claim {self.groups_claim!r} is not one of "
                             f"{', '.join(GROUP_CLAIMS)}")
        self.algorithms = tuple(self.algorithms)
        bad = [a for a in self.algorithms if a not in ASYMMETRIC]
        if bad or not self.algorithms:
            raise DodasError(f"issuer {self.url}: algorithms {bad or '[]'} refused: only asymmetric ones "
                             f"({', '.join(sorted(ASYMMETRIC))})")
        if self.introspection and not (self.client_id and self.client_secret):
            raise DodasError(f"issuer {self.url}: introspection needs client_id and client_secret")


def normalise(url: str) -> str:
    """Issuers are compared exactly, up to a trailing slash (IAM's `iss` has one)."""
    return str(url).strip().rstrip("/")


@dataclass
class _Issuer:
    """What is known of one issuer: its discovery document and decoded keys."""

    cfg: IssuerConfig
    lock: threading.Lock = field(default_factory=threading.Lock)
    discovery: dict[str, Any] | None = None
    discovered_at: float = 0.0
    keys: dict[str | None, RSAKey | ECKey] = field(default_factory=dict)
    jwks_fetched_at: float | None = None


class TokenValidator:
    """Checks access tokens against the configured issuers; safe to share between threads."""

    def __init__(self, issuers: list[IssuerConfig], leeway: float = 30, jwks_min_refresh: float = 60,
                 http: httpx.Client | None = None) -> None:
        self.leeway = float(leeway)
        self.jwks_min_refresh = float(jwks_min_refresh)
        self.http = http or httpx.Client(timeout=10.0, follow_redirects=False)
        self._issuers = {i.url: _Issuer(i) for i in issuers}

    def endpoints(self, url: str) -> dict[str, Any]:
        """The discovery document of trusted issuer `url` (the dashboard's login
        needs its authorization and token endpoints), cached as for the keys."""
        issuer = self._issuers.get(normalise(url))
        if issuer is None:
            raise AuthError(503, f"{url} is not one of this server's trusted issuers")
        return self._discovery(issuer)

    # -- the one entry point ----------------------------------------------------------
    def validate(self, token: str) -> Identity:
        """The caller `token` proves, or AuthError."""
        token = (token or "").strip()
        if not token or len(token) > MAX_TOKEN or not token.isascii():
            raise AuthError(401, "the access token is not one this server accepts")
        parts = token.split(".")
        if len(parts) != 3:
            return self._introspect(token)
        header, claims = _unverified(parts)
        iss = claims.get("iss")
        issuer = self._issuers.get(normalise(iss)) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError(401, f"tokens from issuer {str(iss)[:200]!r} are not accepted here"
                            if isinstance(iss, str) else "the access token names no issuer (iss)")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.cfg.algorithms:
            raise AuthError(401, f"the token's signature algorithm {str(alg)[:20]!r} is not accepted "
                            f"(accepted: {', '.join(issuer.cfg.algorithms)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError(401, "the token's key id (kid) is not a string")
        key = self._key(issuer, kid, alg)
        try:
            jws.deserialize_compact(token, key, algorithms=[alg])
        except JoseError:
            raise AuthError(401, "the access token's signature is not valid") from None
        self._check_times(claims)
        self._check_audience(issuer.cfg, claims)
        return self._identity(issuer.cfg, claims)

    def id_token(self, token: str, issuer_url: str, client_id: str, nonce: str) -> dict[str, Any]:
        """The claims of the ID token a login's code was exchanged for, or AuthError.

        The dashboard's login proves with it that the code answers the login this
        browser started: the `nonce` sent to the authorization endpoint must come
        back, signed by the issuer, in a token meant for this client (OIDC Core
        3.1.3.7). A code minted for another login carries another nonce."""
        token = (token or "").strip() if isinstance(token, str) else ""
        parts = token.split(".")
        if not token or len(token) > MAX_TOKEN or not token.isascii() or len(parts) != 3:
            raise AuthError(401, "the issuer gave no ID token with the login (an OpenID Connect issuer must)")
        header, claims = _unverified(parts)
        issuer = self._issuers.get(normalise(issuer_url))
        if issuer is None or not isinstance(claims.get("iss"), str) or normalise(claims["iss"]) != issuer.cfg.url:
            raise AuthError(401, "the ID token was not issued by the issuer the login went to")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in issuer.cfg.algorithms or not isinstance(kid, (str, type(None))):
            raise AuthError(401, f"the ID token's signature algorithm {str(alg)[:20]!r} is not accepted")
        try:
            jws.deserialize_compact(token, self._key(issuer, kid, alg), algorithms=[alg])
        except JoseError:
            raise AuthError(401, "the ID token's signature is not valid") from None
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if client_id not in auds or (len(auds) > 1 and claims.get("azp") != client_id):
            raise AuthError(401, "the ID token is not meant for this dashboard (audience)")
        if not _number(claims.get("exp")) or time.time() - self.leeway >= claims["exp"]:
            raise AuthError(401, "the ID token has expired or has no expiry")
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise AuthError(401, "the ID token answers another login (its nonce does not match)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthError(401, "the ID token names no subject (sub)")
        return claims

    # -- keys ------------------------------------------------------------------------------
    def _key(self, issuer: _Issuer, kid: str | None, alg: str) -> RSAKey | ECKey:
        key = issuer.keys.get(kid) if kid is not None else _only(issuer.keys)
        if key is None:
            with issuer.lock:  # one refresh at a time; others wait and see its result
                key = issuer.keys.get(kid) if kid is not None else _only(issuer.keys)
                if key is None and self._may_refetch(issuer):
                    self._fetch_jwks(issuer)
                    key = issuer.keys.get(kid) if kid is not None else _only(issuer.keys)
        if key is None:
            raise AuthError(401, f"the token was signed with a key {issuer.cfg.url} does not publish"
                            + (f" (kid {kid[:80]!r})" if kid else " (and it names none)"))
        if key.key_type != _KEY_TYPE[alg[:2]]:
            raise AuthError(401, f"the token's algorithm {alg} does not fit its key ({key.key_type})")
        return key

    def _may_refetch(self, issuer: _Issuer) -> bool:
        last = issuer.jwks_fetched_at
        return last is None or time.monotonic() - last >= self.jwks_min_refresh

    def _fetch_jwks(self, issuer: _Issuer) -> None:
        issuer.jwks_fetched_at = time.monotonic()  # set first: a failing issuer is not hammered either
        uri = self._discovery(issuer).get("jwks_uri")
        if not isinstance(uri, str):
            raise AuthError(503, f"the issuer {issuer.cfg.url} publishes no jwks_uri")
        data = self._get_json(uri, issuer.cfg.url)
        keys: dict[str | None, RSAKey | ECKey] = {}
        for jwk in data.get("keys") or [] if isinstance(data, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC") or jwk.get("use", "sig") != "sig":
                continue
            try:
                key = import_key(jwk)
            except (JoseError, ValueError, TypeError):
                continue  # one malformed key does not hide the others
            if not key.is_private:  # a published private key is not used for anything
                keys[jwk.get("kid")] = key
        issuer.keys = keys  # replaced whole: readers outside the lock see old or new, never half

    def _discovery(self, issuer: _Issuer) -> dict[str, Any]:
        now = time.monotonic()
        if issuer.discovery is None or now - issuer.discovered_at > DISCOVERY_TTL:
            doc = self._get_json(issuer.cfg.url + "/.well-known/openid-configuration", issuer.cfg.url)
            if not isinstance(doc, dict) or normalise(str(doc.get("issuer", ""))) != issuer.cfg.url:
                raise AuthError(503, f"the discovery document of {issuer.cfg.url} names another issuer")
            issuer.discovery, issuer.discovered_at = doc, now
        return issuer.discovery

    def _get_json(self, url: str, who: str) -> Any:
        try:
            r = self.http.get(url, headers={"Accept": "application/json"})
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthError(503, f"the issuer {who} cannot be reached to check the token "
                            f"({type(exc).__name__} from {url})") from None

    # -- claims ----------------------------------------------------------------------------
    def _check_times(self, claims: dict[str, Any]) -> None:
        now = time.time()
        exp = claims.get("exp")
        if not _number(exp):
            raise AuthError(401, "the access token has no expiry (exp)")
        if now - self.leeway >= exp:
            raise AuthError(401, "the access token has expired")
        for name, what in (("nbf", "is not valid yet (nbf)"), ("iat", "was issued in the future (iat)")):
            value = claims.get(name)
            if value is None:
                continue
            if not _number(value):
                raise AuthError(401, f"the access token's {name} is not a time")
            if value > now + self.leeway:
                raise AuthError(401, f"the access token {what}")

    @staticmethod
    def _check_audience(cfg: IssuerConfig, claims: dict[str, Any]) -> None:
        if cfg.audience is None:
            return
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if cfg.audience not in auds:
            raise AuthError(401, f"the access token is not meant for this server (audience {cfg.audience!r})")

    @staticmethod
    def _identity(cfg: IssuerConfig, claims: dict[str, Any]) -> Identity:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError(401, "the access token names no subject (sub)")
        raw = claims.get(cfg.groups_claim)
        groups = _groups(raw)
        if cfg.require_groups and not groups:
            raise AuthError(403, f"the access token carries no {cfg.groups_claim} claim: this server admits "
                            f"members of groups only (ask the issuer's admins, or request the scope that "
                            f"releases it)")
        name = next((v for v in (claims.get("preferred_username"), claims.get("username"), claims.get("email"),
                                 sub) if isinstance(v, str) and v), sub)
        return Identity(cfg.url, sub, name, groups)

    # -- opaque tokens -----------------------------------------------------------------------
    def _introspect(self, token: str) -> Identity:
        candidates = [i for i in self._issuers.values() if i.cfg.introspection]
        if not candidates:
            raise AuthError(401, "the access token is not a JWT, and no issuer here checks opaque tokens")
        for issuer in candidates:
            endpoint = self._discovery(issuer).get("introspection_endpoint")
            if not isinstance(endpoint, str):
                continue
            try:
                r = self.http.post(endpoint, data={"token": token, "token_type_hint": "access_token"},
                                   auth=(issuer.cfg.client_id or "", issuer.cfg.client_secret or ""),
                                   headers={"Accept": "application/json"})
                r.raise_for_status()
                answer = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise AuthError(503, f"the introspection endpoint of {issuer.cfg.url} failed "
                                f"({type(exc).__name__})") from None
            if not isinstance(answer, dict) or answer.get("active") is not True:
                continue
            if "iss" in answer and normalise(str(answer["iss"])) != issuer.cfg.url:
                continue
            claims = {**answer, "exp": answer.get("exp", time.time() + self.leeway + 1)}
            self._check_times(claims)
            self._check_audience(issuer.cfg, claims)
            return self._identity(issuer.cfg, claims)
        raise AuthError(401, "the access token is not active (expired, revoked or unknown to the issuers)")


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _unverified(parts: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, read only to choose the issuer and key: trusted after the signature check."""
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, UnicodeDecodeError):
        raise AuthError(401, "the access token is not a well-formed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError(401, "the access token is not a well-formed JWT")
    return header, claims


def _only(keys: dict[str | None, RSAKey | ECKey]) -> RSAKey | ECKey | None:
    """A token without a kid is accepted only when the issuer publishes a single key."""
    return next(iter(keys.values())) if len(keys) == 1 else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _groups(raw: Any) -> frozenset[str]:
    """Groups as given (a list, or a space-separated string as some issuers send)."""
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(g for g in raw if isinstance(g, str) and g)
    return frozenset()
