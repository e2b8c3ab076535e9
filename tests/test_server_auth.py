"""Authentication, against a real issuer: the development issuer serving on
loopback over HTTP, with a real RSA key (created here, given as its key file),
real discovery and a real key set. Tokens with defects the issuer would never
produce are signed here with that same private key: real signatures, no mocks.

Server side: every defect gets the status it deserves (401 for a token that does
not prove who the caller is, 403 for one that does but may not come in), the key
set is fetched again on an unknown kid at most once per interval (the issuer
counts its requests), opaque tokens go to introspection. Client side: the device
flow login, the 0600 refresh token file, transparent refresh with rotation,
logout, DODAS_TOKEN first, and no token anywhere in what is printed or logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.issuer import running_issuer
from support.waiting import wait_past
from joserfc import jwt
from joserfc.jwk import RSAKey

from dodas.client import tokens
from dodas.devissuer import keys as devkeys
from dodas.devissuer.serve import Running
from dodas.errors import DodasError
from dodas.server.auth import AuthError, Identity, IssuerConfig, TokenValidator

CONFIG = {
    "audience": "dodas",
    "device_interval": 1,
    "users": [
        {"username": "alice", "password": "alice-pw", "groups": ["/dodas", "/dodas/admins"]},
        {"username": "bob", "password": "bob-pw"},
    ],
    "clients": [
        {"client_id": "dodas-cli"},
        {"client_id": "dodas-server", "client_secret": "server-secret"},
        {"client_id": "wlcg", "groups_claim": "wlcg.groups"},
        {"client_id": "opaque", "opaque_tokens": True},
        {"client_id": "short", "access_token_lifetime": 2},
        {"client_id": "dashboard", "redirect_uris": ["http://127.0.0.1:9/cb"]},
    ],
}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    """This module's issuer: every kind of client the validator meets."""
    with running_issuer(tmp_path_factory.mktemp("issuer"), CONFIG) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for var in (tokens.ENV_TOKEN, tokens.ENV_AGENT, tokens.ENV_ISSUER):
        monkeypatch.delenv(var, raising=False)
    tokens._cache.clear()
    yield
    tokens._cache.clear()


def password_token(issuer: Running, client_id: str = "dodas-cli", user: str = "alice", scope: str = "openid",
                   **extra: str) -> str:
    r = httpx.post(issuer.url + "/token", data={"grant_type": "password", "client_id": client_id, "username": user,
                                                "password": f"{user}-pw", "scope": scope, **extra})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def private_key(issuer: Running) -> RSAKey:
    key = RSAKey.import_key(Path(issuer.key_file).read_bytes())  # type: ignore[attr-defined]
    key.ensure_kid()
    return key


def claims(issuer: Running, **over: object) -> dict[str, object]:
    now = int(time.time())
    base = {"iss": issuer.url, "sub": "s-1", "aud": "dodas", "exp": now + 300, "iat": now, "nbf": now,
            "jti": "j", "preferred_username": "eve", "groups": ["/dodas"]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: RSAKey, body: dict[str, object], kid: str | None = None, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": kid or key.kid}, body, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def validator(issuer: Running, **cfg: object) -> TokenValidator:
    refresh = cfg.pop("jwks_min_refresh", 60)
    return TokenValidator([IssuerConfig(url=issuer.url + "/", audience="dodas", **cfg)],  # trailing / normalised
                          jwks_min_refresh=refresh)


def status(v: TokenValidator, token: str) -> int:
    with pytest.raises(AuthError) as exc:
        v.validate(token)
    assert len(token) < 8 or token not in exc.value.message
    return exc.value.status


# -- good tokens ------------------------------------------------------------------------
def test_a_token_from_the_issuer_gives_the_identity(issuer):
    ident = validator(issuer).validate(password_token(issuer))
    assert ident.username == "alice" and ident.groups == frozenset({"/dodas", "/dodas/admins"})
    assert ident.issuer == issuer.url and ident.key == f"{issuer.url} {ident.subject}"


def test_groups_from_wlcg_groups(issuer):
    tok = password_token(issuer, "wlcg")
    assert "wlcg.groups" in json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    ident = validator(issuer, groups_claim="wlcg.groups").validate(tok)
    assert ident.groups == frozenset({"/dodas", "/dodas/admins"})  # kept as given, leading "/"
    key = private_key(issuer)  # a space-separated string, as some issuers send it
    spaced = sign(key, claims(issuer, groups=None, **{"eduperson_entitlement": "urn:a urn:b"}))
    assert validator(issuer, groups_claim="eduperson_entitlement").validate(spaced).groups == {"urn:a", "urn:b"}


def test_known_keys_cost_no_request(issuer):
    v = validator(issuer)
    tok = password_token(issuer)
    v.validate(tok)
    before = dict(issuer.issuer.hits)
    for _ in range(50):
        v.validate(tok)
    assert dict(issuer.issuer.hits) == before


# -- defects ------------------------------------------------------------------------------
def test_defects_get_401(issuer):
    v = validator(issuer)
    key = private_key(issuer)
    now = int(time.time())
    good = sign(key, claims(issuer))
    assert v.validate(good).username == "eve"
    head, body, sig = good.split(".")
    public_pem = key.as_pem(private=False)
    hs_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': key.kid}).encode())}.{body}".encode()
    cases = {
        "expired": sign(key, claims(issuer, exp=now - 120, iat=now - 400, nbf=now - 400)),
        "not yet valid": sign(key, claims(issuer, nbf=now + 600)),
        "issued in the future": sign(key, claims(issuer, iat=now + 600)),
        "no exp": sign(key, claims(issuer, exp=None)),
        "wrong issuer": sign(key, claims(issuer, iss="https://evil.example.org")),
        "no issuer": sign(key, claims(issuer, iss=None)),
        "wrong audience": sign(key, claims(issuer, aud="someone-else")),
        "audience list without us": sign(key, claims(issuer, aud=["a", "b"])),
        "alg none": f"{b64(json.dumps({'alg': 'none', 'kid': key.kid}).encode())}.{body}.",
        "HS256 with the public key": hs_input.decode() + "." + b64(hmac.new(public_pem, hs_input,
                                                                            hashlib.sha256).digest()),
        "bad signature": f"{head}.{body}.{sig[:-6]}{'AAAAAA' if sig[-6:] != 'AAAAAA' else 'BBBBBB'}",
        "body swapped": f"{head}.{b64(json.dumps(claims(issuer, sub='admin')).encode())}.{sig}",
        "garbage": "this is not a token",
        "three garbage parts": "a.b.c",
        "empty": "",
        "huge": "x." * 20000 + "x",
    }
    got = {name: status(v, tok) for name, tok in cases.items()}
    assert got == {name: 401 for name in cases}
    assert v.validate(sign(key, claims(issuer, aud=["x", "dodas"]))).subject == "s-1"  # a list with us
    late = sign(key, claims(issuer, exp=now - 10))  # within the leeway
    assert v.validate(late).subject == "s-1"


def test_missing_groups_where_required_is_403(issuer):
    v = validator(issuer, require_groups=True)
    assert status(v, password_token(issuer, user="bob")) == 403
    assert v.validate(password_token(issuer)).username == "alice"


def test_symmetric_and_none_algorithms_cannot_be_configured(issuer):
    for algs in (("HS256",), ("none",), ("RS256", "HS512"), ()):
        with pytest.raises(DodasError):
            IssuerConfig(url=issuer.url, algorithms=algs)
    with pytest.raises(DodasError):
        IssuerConfig(url=issuer.url, groups_claim="roles")
    assert "server-secret" not in repr(IssuerConfig(url=issuer.url, client_id="x", client_secret="server-secret"))


def test_unknown_kids_refetch_at_most_once_per_interval_and_rotation_works(tmp_path):
    """A flood of tokens naming unknown keys costs at most one key-set fetch per
    interval. Counted against the time the flood really took (a busy machine may
    stretch it over more than one interval), never against a guess of it."""
    interval = 1.0
    with running_issuer(tmp_path, CONFIG) as running:
        hits = running.issuer.hits
        v = TokenValidator([IssuerConfig(url=running.url, audience="dodas")], jwks_min_refresh=interval)
        first = password_token(running)
        stranger = RSAKey.generate_key(2048)
        made_up = [sign(stranger, claims(running), kid=f"made-up-{n}") for n in range(30)]
        again = [sign(stranger, claims(running), kid=f"again-{n}") for n in range(30)]

        def flood(tokens: list[str]) -> None:
            for t in tokens:
                assert status(v, t) == 401

        started = time.monotonic()  # the first fetch is at or after this
        v.validate(first)
        assert hits["/jwks"] == 1
        flood(made_up)
        # fetches are `interval` apart: after the first, at most one per interval elapsed
        assert hits["/jwks"] - 1 <= (time.monotonic() - started) // interval, hits
        waited = hits["/jwks"]
        wait_past(time.monotonic() + interval)  # the last fetch is now an interval old
        new_kid = running.issuer.keys.rotate()
        rotated = password_token(running)
        assert json.loads(base64.urlsafe_b64decode(rotated.split(".")[0] + "=="))["kid"] == new_kid
        started = time.monotonic()
        assert v.validate(rotated).username == "alice"
        assert hits["/jwks"] == waited + 1  # exactly one refresh for the new kid
        assert v.validate(first).username == "alice"  # the old key is still published
        flood(again)
        assert hits["/jwks"] - (waited + 1) <= (time.monotonic() - started) // interval, hits
        assert hits["/.well-known/openid-configuration"] == 1


def test_an_unreachable_issuer_is_503(issuer):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    v = TokenValidator([IssuerConfig(url=dead)], http=httpx.Client(timeout=2))
    assert status(v, sign(private_key(issuer), claims(issuer, iss=dead))) == 503


def test_opaque_tokens_go_to_introspection(issuer):
    tok = password_token(issuer, "opaque")
    assert tok.count(".") != 2
    assert status(validator(issuer), tok) == 401  # introspection off: refused
    v = validator(issuer, introspection=True, client_id="dodas-server", client_secret="server-secret")
    ident = v.validate(tok)
    assert ident.username == "alice" and "/dodas" in ident.groups
    r = httpx.post(issuer.url + "/revoke", data={"token": tok, "client_id": "opaque"})
    assert r.status_code == 200
    assert status(v, tok) == 401  # revoked: active=false
    wrong = validator(issuer, introspection=True, client_id="dodas-server", client_secret="wrong")
    assert status(wrong, password_token(issuer, "opaque")) == 503  # the issuer refused our client


# -- the development issuer's own rules ---------------------------------------------------
def _device(url: str) -> tuple[dict, float]:
    """A new device request's answer, and the wall-clock time once it came back
    (its code expires `expires_in` seconds after the issuer made it, so no later)."""
    answer = httpx.post(url + "/device_authorization", data={"client_id": "dodas-cli", "scope": "openid"}).json()
    return answer, time.time()


def _poll(url: str, device_code: str) -> str:
    """The device's poll: the token endpoint's error, or "ok"."""
    r = httpx.post(url + "/token", data={"grant_type": tokens.DEVICE_GRANT, "device_code": device_code,
                                         "client_id": "dodas-cli"})
    return r.json().get("error", "ok")


def test_device_flow_errors(tmp_path):
    # codes that outlive any slowness (the default 600 s) and an interval no two polls here
    # can be apart by, so the answers depend on the steps, not on how fast they run
    with running_issuer(tmp_path, {**CONFIG, "device_interval": 600}) as running:
        url = running.url
        d, _ = _device(url)
        assert set(d) >= {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                          "expires_in", "interval"}
        assert _poll(url, d["device_code"]) == "authorization_pending"
        assert _poll(url, d["device_code"]) == "slow_down"
        denied, _ = _device(url)
        page = httpx.post(url + "/device", data={"user_code": denied["user_code"], "action": "deny"})
        assert page.status_code == 200
        assert _poll(url, denied["device_code"]) == "access_denied"
        bad = httpx.post(url + "/device", data={"user_code": d["user_code"], "username": "alice",
                                                "password": "wrong", "action": "approve"})
        assert bad.status_code == 401
        assert _poll(url, d["device_code"]) == "slow_down", "still pending: a wrong password answers nothing"
        assert _poll(url, "never-issued") == "invalid_grant"


def test_a_device_code_expires(tmp_path):
    with running_issuer(tmp_path, {**CONFIG, "device_code_lifetime": 1}) as running:
        d, answered = _device(running.url)
        wait_past(answered + d["expires_in"], clock=time.time)  # the issuer's clock
        assert _poll(running.url, d["device_code"]) == "expired_token"
        approve = httpx.post(running.url + "/device", data={"user_code": d["user_code"], "username": "alice",
                                                            "password": "alice-pw", "action": "approve"})
        assert approve.status_code == 400, "an expired code cannot be approved"


def test_pages_escape_what_they_are_given(issuer):
    evil = "<script>alert(1)</script>"
    r = httpx.get(issuer.url + "/device", params={"user_code": evil})
    assert evil not in r.text and "&lt;script&gt;" in r.text and "NOT FOR PRODUCTION" in r.text


def test_authorization_code_with_pkce(issuer):
    verifier = b64(os.urandom(40))
    challenge = b64(hashlib.sha256(verifier.encode()).digest())
    q = {"response_type": "code", "client_id": "dashboard", "redirect_uri": "http://127.0.0.1:9/cb",
         "scope": "openid offline_access", "state": "<b>'x'</b>", "code_challenge": challenge,
         "code_challenge_method": "S256"}
    form = httpx.get(issuer.url + "/authorize", params=q)
    assert form.status_code == 200 and "<b>'x'</b>" not in form.text
    assert httpx.get(issuer.url + "/authorize", params={**q, "redirect_uri": "http://evil/"}).status_code == 400
    plain = httpx.get(issuer.url + "/authorize", params={**q, "code_challenge_method": "plain"})
    assert plain.status_code == 303 and "error=invalid_request" in plain.headers["location"]
    r = httpx.post(issuer.url + "/authorize", data={**q, "username": "alice", "password": "alice-pw"})
    assert r.status_code == 303
    code = re.search(r"[?&]code=([^&]+)", r.headers["location"]).group(1)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": q["redirect_uri"],
                "client_id": "dashboard"}
    assert httpx.post(issuer.url + "/token", data={**exchange, "code_verifier": "x" * 43}).json()["error"] \
        == "invalid_grant"  # a wrong verifier spends the code, too
    r = httpx.post(issuer.url + "/authorize", data={**q, "username": "alice", "password": "alice-pw"})
    code = re.search(r"[?&]code=([^&]+)", r.headers["location"]).group(1)
    answer = httpx.post(issuer.url + "/token", data={**exchange, "code": code, "code_verifier": verifier}).json()
    assert validator(issuer).validate(answer["access_token"]).username == "alice"
    assert answer["refresh_token"] and answer["id_token"]
    again = httpx.post(issuer.url + "/token", data={**exchange, "code": code, "code_verifier": verifier})
    assert again.json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_a_replay_ends_the_line(issuer):
    r = httpx.post(issuer.url + "/token", data={"grant_type": "password", "client_id": "dodas-cli",
                                                "username": "alice", "password": "alice-pw",
                                                "scope": "openid offline_access"}).json()
    first = r["refresh_token"]

    def use(rt: str) -> dict:
        return httpx.post(issuer.url + "/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                                       "client_id": "dodas-cli"}).json()
    second = use(first)["refresh_token"]
    assert second != first
    assert use(first)["error"] == "invalid_grant"  # replayed
    assert use(second)["error"] == "invalid_grant"  # and the line it belongs to has ended


def test_the_command_refuses_anything_but_loopback_and_open_key_files(tmp_path):
    key = tmp_path / "k.pem"
    key.write_bytes(devkeys.new_pem())
    key.chmod(0o644)
    cmd = [sys.executable, "-m", "dodas.devissuer", "--port", "0"]
    r = subprocess.run([*cmd, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "loopback" in r.stderr
    r = subprocess.run([*cmd, "--key-file", str(key)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "chmod 600" in r.stderr
    key.chmod(0o600)
    conf = tmp_path / "c.yaml"
    conf.write_text(json.dumps(CONFIG))
    p = subprocess.Popen([*cmd, "--key-file", str(key), "--config", str(conf)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        url = line.split("issuer: ", 1)[1].strip()
        tok = httpx.post(url + "/token", data={"grant_type": "password", "client_id": "dodas-cli",
                                               "username": "alice", "password": "alice-pw"}).json()["access_token"]
        assert TokenValidator([IssuerConfig(url=url)]).validate(tok).username == "alice"
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1]
    assert "NOT FOR PRODUCTION" in err


# -- the client side ----------------------------------------------------------------------------
def play_user(url: str, user_code: str) -> None:
    r = httpx.post(url + "/device", data={"user_code": user_code, "username": "alice", "password": "alice-pw",
                                          "action": "approve"})
    assert r.status_code == 200, r.text


def device_login(issuer: Running, client_id: str = "dodas-cli") -> list[str]:
    """`login` in a thread, the test as the user on the /device page; returns what login printed."""
    printed: list[str] = []
    seen = threading.Event()
    errors: list[BaseException] = []

    def show(text: str) -> None:
        printed.append(text)
        seen.set()

    def run() -> None:
        try:
            tokens.login(issuer.url, client_id, tokens.DEFAULT_SCOPES, show)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
            seen.set()

    t = threading.Thread(target=run)
    t.start()
    assert seen.wait(10)
    code = re.search(r"enter the code (\S+)", printed[0]).group(1) if printed else None
    if code:
        play_user(issuer.url, code)
    t.join(30)
    assert not errors, errors
    return printed


def test_login_stores_a_private_refresh_token_and_prints_no_token(issuer, dodas_home, caplog):
    caplog.set_level(logging.DEBUG)
    printed = device_login(issuer)
    path = tokens.token_file(issuer.url)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    stored = json.loads(path.read_text())
    tok = tokens.access_token(issuer.url)
    assert tok not in path.read_text()  # the file holds the refresh token only
    ident = validator(issuer).validate(tok)
    assert ident.username == "alice" and ident.groups == {"/dodas", "/dodas/admins"}
    output = "\n".join(printed) + caplog.text
    assert stored["refresh_token"] not in output and tok not in output
    assert issuer.url + "/device" in printed[0]


def test_access_token_refreshes_near_expiry_and_saves_the_rotated_token(issuer):
    device_login(issuer, "short")
    path = tokens.token_file(issuer.url)
    rt1 = json.loads(path.read_text())["refresh_token"]
    t1 = tokens.access_token(issuer.url)
    _, obtained, expires = tokens._cache[issuer.url]
    fresh_until = expires - min(tokens.MARGIN, (expires - obtained) / 2)  # 2 s tokens: half their life
    again = tokens.access_token(issuer.url)
    if time.time() < fresh_until:  # asked while fresh (a busy machine may have taken longer)
        assert again == t1, "cached while fresh"
    wait_past(fresh_until, clock=time.time)
    t2 = tokens.access_token(issuer.url)
    assert t2 != t1 and validator(issuer).validate(t2).username == "alice"
    rt2 = json.loads(path.read_text())["refresh_token"]
    assert rt2 != rt1 and path.stat().st_mode & 0o777 == 0o600
    tokens._cache.clear()  # a new process: only the file
    assert validator(issuer).validate(tokens.access_token(issuer.url)).username == "alice"


def test_logout_removes_and_revokes(issuer):
    device_login(issuer)
    path = tokens.token_file(issuer.url)
    rt = json.loads(path.read_text())["refresh_token"]
    assert tokens.logout(issuer.url) is True
    assert not path.exists()
    active = httpx.post(issuer.url + "/introspect", data={"token": rt},
                        auth=("dodas-server", "server-secret")).json()["active"]
    assert active is False
    assert tokens.logout(issuer.url) is False
    with pytest.raises(tokens.TokenError, match="dodas login"):
        tokens.access_token(issuer.url)


def test_dodas_token_wins_and_oidc_agent_is_named(issuer, monkeypatch):
    device_login(issuer)
    monkeypatch.setenv(tokens.ENV_TOKEN, "from-the-environment")
    assert tokens.access_token(issuer.url) == "from-the-environment"
    monkeypatch.delenv(tokens.ENV_TOKEN)
    monkeypatch.setenv(tokens.ENV_AGENT, "my-account")
    monkeypatch.delenv("OIDC_SOCK", raising=False)
    with pytest.raises(tokens.TokenError, match="oidc-agent"):
        tokens.access_token(issuer.url)


def test_an_open_token_file_is_refused(issuer):
    device_login(issuer)
    path = tokens.token_file(issuer.url)
    path.chmod(0o644)
    tokens._cache.clear()
    with pytest.raises(tokens.TokenError, match="chmod 600") as exc:
        tokens.access_token(issuer.url)
    assert json.loads(path.read_text())["refresh_token"] not in str(exc.value)


def test_identity_key_is_issuer_and_subject():
    assert Identity("https://iam.example.org", "abc", "alice", frozenset()).key == "https://iam.example.org abc"
