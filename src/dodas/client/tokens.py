"""Access tokens for talking to a `dodas server`, on the user's side.

`access_token` takes, in order: the `DODAS_TOKEN` environment variable (CI,
scripts); oidc-agent when `DODAS_OIDC_AGENT_ACCOUNT` names an account (the
usual way at INFN, EGI and WLCG sites: the agent keeps the refresh token); or
the login made with `login` (the device flow, RFC 8628, which works over SSH and
on machines without a browser).

A login keeps only the refresh token, in `<config dir>/tokens/<issuer>.json`
(mode 0600 from creation, written whole or not at all). Access tokens live in
this process's memory and are refreshed when they come near their expiry; the
issuer may rotate the refresh token on each use, and the new one is saved under
a file lock, so that two commands refreshing at once do not spend the same
refresh token twice (which a rotating issuer takes as theft, ending the login).
No token is ever printed, logged or put in an exception message or a URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from dodas import paths
from dodas.errors import DodasError

ENV_TOKEN = "DODAS_TOKEN"
ENV_AGENT = "DODAS_OIDC_AGENT_ACCOUNT"
ENV_ISSUER = "DODAS_ISSUER"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPES = ("openid", "profile", "offline_access")
#: refresh when this little of a token's life is left (less for tokens that live under a minute)
MARGIN = 30.0
TIMEOUT = 15.0

_cache: dict[str, tuple[str, float, float]] = {}  # issuer -> (access token, obtained, expires), time.time()
_cache_lock = threading.Lock()


class TokenError(DodasError):
    """No access token could be had; the message says what to do, never quotes a token."""


# -- where logins are kept -------------------------------------------------------------
def normalise(issuer_url: str) -> str:
    url = str(issuer_url).strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise TokenError(f"{issuer_url!r} is not an issuer URL (https://...)")
    return url


def tokens_dir() -> Path:
    return paths.config_dir() / "tokens"


def token_file(issuer_url: str) -> Path:
    """`<host>[_<port>][-<hash of the path>].json`: Keycloak and Check-in issuers have paths."""
    parts = urlsplit(normalise(issuer_url))
    host = re.sub(r"[^A-Za-z0-9.-]", "_", parts.hostname or "issuer")
    name = host + (f"_{parts.port}" if parts.port else "")
    if parts.path.strip("/"):
        name += "-" + hashlib.sha256(parts.path.encode()).hexdigest()[:10]
    return tokens_dir() / f"{name}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all, 0600 from creation: a reader sees the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise TokenError(f"{path}: others may read this login (mode {mode & 0o777:o}); `chmod 600` it, or log "
                         f"in again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TokenError(f"{path}: the stored login cannot be read ({type(exc).__name__}): log in again") from None
    if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str):
        raise TokenError(f"{path}: the stored login is not one dodas wrote: log in again")
    return data


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Between processes: one refresh of a login at a time."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- talking to the issuer -------------------------------------------------------------------
def _http(http: httpx.Client | None) -> httpx.Client:
    return http or httpx.Client(timeout=TIMEOUT, follow_redirects=False)


def discover(issuer_url: str, http: httpx.Client | None = None) -> dict[str, Any]:
    """The issuer's discovery document, checked to be its own."""
    url = normalise(issuer_url)
    doc = _json(_http(http), "GET", url + "/.well-known/openid-configuration", url)
    if not isinstance(doc, dict) or str(doc.get("issuer", "")).rstrip("/") != url:
        raise TokenError(f"{url}: the discovery document names another issuer")
    return doc


def _json(http: httpx.Client, method: str, url: str, issuer: str, **kw: Any) -> Any:
    try:
        r = http.request(method, url, headers={"Accept": "application/json"}, **kw)
        r.raise_for_status()
        return r.json()
    except httpx.HTTPStatusError as exc:
        raise TokenError(f"the issuer {issuer} answered {exc.response.status_code} at {url}") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise TokenError(f"the issuer {issuer} cannot be reached at {url} ({type(exc).__name__})") from None


def _token_request(http: httpx.Client, endpoint: str, issuer: str, form: dict[str, str]) -> tuple[int, Any]:
    try:
        r = http.post(endpoint, data=form, headers={"Accept": "application/json"})
        return r.status_code, r.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise TokenError(f"the issuer {issuer} cannot be reached at {endpoint} ({type(exc).__name__})") from None


def _remember(issuer: str, answer: dict[str, Any]) -> str:
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError(f"the issuer {issuer} gave no access token")
    now = time.time()
    lifetime = answer.get("expires_in")
    lifetime = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else 60.0
    with _cache_lock:
        _cache[issuer] = (token, now, now + lifetime)
    return token


def _cached(issuer: str) -> str | None:
    with _cache_lock:
        entry = _cache.get(issuer)
    if entry is None:
        return None
    token, obtained, expires = entry
    return token if time.time() < expires - min(MARGIN, (expires - obtained) / 2) else None


# -- the three functions the CLI calls --------------------------------------------------------
def access_token(server_cfg: str | Mapping[str, Any] | None = None, *, http: httpx.Client | None = None) -> str:
    """A valid access token for the server: DODAS_TOKEN, then oidc-agent, then the stored login.

    `server_cfg` is the server's URL or a mapping that may name its `issuer`;
    without one, DODAS_ISSUER or the only stored login is used.
    """
    if os.environ.get(ENV_TOKEN, "").strip():
        return os.environ[ENV_TOKEN].strip()
    account = os.environ.get(ENV_AGENT, "").strip()
    if account:
        return _from_agent(account)
    issuer = issuer_for(server_cfg)
    token = _cached(issuer)
    if token:
        return token
    path = token_file(issuer)
    with _locked(path):
        token = _cached(issuer)  # another thread may have refreshed while this one waited
        if token:
            return token
        stored = _read(path)
        if stored is None:
            raise TokenError(f"not logged in to {issuer}: run `dodas login {issuer}` (or set {ENV_TOKEN} or "
                             f"{ENV_AGENT})")
        return _refresh(issuer, path, stored, _http(http))


def token_for_server(server_cfg: str | Mapping[str, Any] | None = None, *,
                     http: httpx.Client | None = None) -> str | None:
    """`access_token`, or None when no way of getting one is set up at all (no
    DODAS_TOKEN, no oidc-agent account, no stored login): a server on loopback
    without issuers needs none, and one that does answers 401, whose message
    says how to log in. A login that exists but fails still raises, saying why."""
    try:
        return access_token(server_cfg, http=http)
    except TokenError:
        if os.environ.get(ENV_AGENT, "").strip() or (tokens_dir().is_dir() and any(tokens_dir().glob("*.json"))):
            raise
        return None


def issuer_for(server_cfg: str | Mapping[str, Any] | None) -> str:
    if isinstance(server_cfg, Mapping) and server_cfg.get("issuer"):
        return normalise(str(server_cfg["issuer"]))
    if os.environ.get(ENV_ISSUER, "").strip():
        return normalise(os.environ[ENV_ISSUER])
    stored = sorted(tokens_dir().glob("*.json")) if tokens_dir().is_dir() else []
    issuers = []
    for p in stored:
        data = _read(p)
        if data and isinstance(data.get("issuer"), str):
            issuers.append(data["issuer"])
    if len(issuers) == 1:
        return issuers[0]
    if not issuers:
        raise TokenError(f"no access token: set {ENV_TOKEN}, or {ENV_AGENT} (oidc-agent), or run "
                         f"`dodas login ISSUER_URL`")
    raise TokenError(f"logged in to several issuers ({', '.join(issuers)}): set {ENV_ISSUER} to the one this "
                     f"server trusts")


def _refresh(issuer: str, path: Path, stored: dict[str, Any], http: httpx.Client) -> str:
    endpoint = stored.get("token_endpoint") or discover(issuer, http).get("token_endpoint")
    form = {"grant_type": "refresh_token", "refresh_token": stored["refresh_token"],
            "client_id": str(stored.get("client_id") or "")}
    status, answer = _token_request(http, str(endpoint), issuer, form)
    if status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        if error == "invalid_grant":
            raise TokenError(f"the login to {issuer} has ended (expired or revoked): run `dodas login {issuer}`")
        raise TokenError(f"the issuer {issuer} refused to refresh the login ({status} {error or ''})".rstrip())
    rotated = answer.get("refresh_token")
    if isinstance(rotated, str) and rotated and rotated != stored["refresh_token"]:
        _write(path, {**stored, "refresh_token": rotated, "saved_at": int(time.time())})
    return _remember(issuer, answer)


def _from_agent(account: str) -> str:
    try:
        import liboidcagent
    except ImportError:
        raise TokenError(f"{ENV_AGENT} is set but the oidc-agent library is missing: pip install liboidcagent "
                         f"(or `pip install 'dodas[server]'`)") from None
    try:
        return str(liboidcagent.get_access_token(account, min_valid_period=60, application_hint="dodas"))
    except liboidcagent.OidcAgentConnectError:
        raise TokenError("oidc-agent is not running (or OIDC_SOCK is not set): start it, e.g. "
                         "`eval $(oidc-agent-service use)`, and load the account with "
                         f"`oidc-add {account}`") from None
    except liboidcagent.OidcAgentError as exc:
        raise TokenError(f"oidc-agent could not give a token for the account {account!r}: {exc} "
                         f"(is it loaded? `oidc-add {account}`)") from None


def login(issuer_url: str, client_id: str, scopes: Sequence[str] | str = DEFAULT_SCOPES,
          print_fn: Callable[[str], None] = print, *, http: httpx.Client | None = None) -> None:
    """Log in with the device flow (RFC 8628) and keep the refresh token.

    Prints where to go and the code to enter there, never a token; polls as
    the issuer says (its interval, 5 s more on each `slow_down`).
    """
    issuer = normalise(issuer_url)
    client = _http(http)
    doc = discover(issuer, client)
    endpoint, token_endpoint = doc.get("device_authorization_endpoint"), doc.get("token_endpoint")
    if not isinstance(endpoint, str) or not isinstance(token_endpoint, str):
        raise TokenError(f"the issuer {issuer} does not offer the device flow (no device_authorization_endpoint)")
    scope = scopes if isinstance(scopes, str) else " ".join(scopes)
    start = _json(client, "POST", endpoint, issuer, data={"client_id": client_id, "scope": scope})
    if not isinstance(start, dict) or not all(isinstance(start.get(k), str) for k in
                                              ("device_code", "user_code", "verification_uri")):
        raise TokenError(f"the issuer {issuer} gave an incomplete device authorization answer")
    complete = start.get("verification_uri_complete")
    print_fn(f"To log in, open {start['verification_uri']} and enter the code {start['user_code']}"
             + (f"\n(or open {complete})" if isinstance(complete, str) else ""))
    interval = float(start.get("interval") or 5)
    deadline = time.monotonic() + float(start.get("expires_in") or 600)
    form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": client_id}
    while True:
        if time.monotonic() + interval > deadline:
            raise TokenError(f"the code expired before the login at {issuer} was completed: log in again")
        time.sleep(interval)
        status, answer = _token_request(client, token_endpoint, issuer, form)
        error = answer.get("error") if isinstance(answer, dict) else None
        if status == 200 and isinstance(answer, dict):
            break
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        if error == "access_denied":
            raise TokenError(f"the login at {issuer} was denied")
        if error == "expired_token":
            raise TokenError(f"the code expired before the login at {issuer} was completed: log in again")
        raise TokenError(f"the issuer {issuer} refused the login ({status} {error or 'no error code'})")
    refresh = answer.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise TokenError(f"the issuer {issuer} gave no refresh token: the client {client_id!r} must be allowed "
                         f"the offline_access scope (asked: {scope})")
    path = token_file(issuer)
    with _locked(path):
        _write(path, {"issuer": issuer, "client_id": client_id, "scopes": scope, "token_endpoint": token_endpoint,
                      "refresh_token": refresh, "saved_at": int(time.time())})
    _remember(issuer, answer)


def logout(issuer_url: str, *, http: httpx.Client | None = None) -> bool:
    """Forget the login (revoking its refresh token at the issuer when it can); False if there was none."""
    issuer = normalise(issuer_url)
    path = token_file(issuer)
    with _cache_lock:
        _cache.pop(issuer, None)
    with _locked(path):
        try:
            stored = _read(path)
        except TokenError:
            stored = None  # unreadable or too open: removed all the same
        if not path.exists():
            return False
        if stored is not None:
            with contextlib.suppress(TokenError, httpx.HTTPError):
                client = _http(http)
                endpoint = discover(issuer, client).get("revocation_endpoint")
                if isinstance(endpoint, str):
                    client.post(endpoint, data={"token": stored["refresh_token"], "token_type_hint": "refresh_token",
                                                "client_id": str(stored.get("client_id") or "")})
        path.unlink(missing_ok=True)
    path.with_name(path.name + ".lock").unlink(missing_ok=True)
    return True
