"""Login CSRF on the dashboard, tried as an attacker would, against a real
`dodas server` trusting the real development issuer.

The attack: mallory starts a login in her own browser, signs in at the issuer
and stops before her browser reaches /web/callback?code=...&state=...; she sends
that URL to alice. Were the `state` not bound to the browser that started the
login, alice's browser would be signed in as mallory (and deploy into mallory's
account). Here it signs no one in: the login's `state` is bound to a pre-login
cookie of mallory's browser, which alice's does not hold. Two real Chromium
sessions play the two people; HTTP clients with their own cookie jars play them
for the neighbours (a code minted with another nonce, two logins in two tabs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support import serverproc
from support.browser import chrome, login, need_chromium, text_of, wait_for
from support.issuer import running_issuer, users
from support.server import SIM, clean_env

from dodas.devissuer.serve import Running

TIMEOUT_S = 60.0
CLIENT = "dodas-dashboard"
PEOPLE = {"alice": ["/cms"], "mallory": ["/cms"]}
REFUSED = "this sign-in cannot be finished here"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Running, Path]]:
    """A server on a port chosen first, so that the issuer knows the dashboard's redirect URI."""
    root = tmp_path_factory.mktemp("csrf")
    port = serverproc.free_port()
    config = {"audience": "dodas", "users": users(PEOPLE),
              "clients": [{"client_id": CLIENT, "redirect_uris": [f"http://127.0.0.1:{port}/web/callback"]}]}
    with running_issuer(root, config) as issuer:
        home = root / "home"
        (home / "config").mkdir(parents=True)
        (home / "config" / "providers.yaml").write_text(json.dumps({"providers": [SIM]}))
        conf = root / "server.json"
        conf.write_text(json.dumps({"issuers": [{"url": issuer.url, "audience": "dodas"}],
                                    "default_providers": ["sim"], "workers": 0}))
        log = root / "server.log"
        proc, url = serverproc.start(clean_env(home), log, "--config", str(conf), cwd=home, port=port)
        yield url, issuer, log
        serverproc.stop(proc)


def _start(client: httpx.Client) -> dict[str, str]:
    """/web/login as a browser follows it: the authorization request's parameters."""
    r = client.get("/web/login")
    assert r.status_code == 303, r.text
    return {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}


def _code(issuer: Running, q: dict[str, str], user: str) -> str:
    """The callback URL the issuer sends the browser to after `user` signs in."""
    r = httpx.post(issuer.url + "/authorize", data={**q, "username": user, "password": f"{user}-pw"})
    assert r.status_code == 303, r.text
    return r.headers["location"]


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=TIMEOUT_S, follow_redirects=False)


def _who(client: httpx.Client) -> str | None:
    """Who the dashboard says is signed in, or None (it sends the browser to log in)."""
    r = client.get("/web/deployments")
    if r.status_code == 303:
        return None
    assert r.status_code == 200, r.text
    return re.search(r'class="who"[^>]*>\s*<span>([^<\s]+)', r.text).group(1)


def test_a_callback_url_from_another_browser_signs_no_one_in(site):
    """Chromium for both. Mallory's browser starts the login and shows her the
    issuer's form; she sends that form herself, outside the browser, to read
    where the issuer would send it (the way one stops before the callback), and
    gives the URL to alice, whose browser opens it."""
    need_chromium()
    url, issuer, _log = site
    mallory, alice = chrome(), chrome()
    try:
        mallory.get(url + "/web/login")
        wait_for(mallory, lambda d: d.current_url.startswith(issuer.url), message="the issuer's login page")
        form = {f.get_attribute("name"): f.get_attribute("value")
                for f in mallory.find_elements("css selector", "form input[type='hidden']")}
        assert form["state"] and form["nonce"] and form["code_challenge_method"] == "S256"
        login_cookie = next(c for c in mallory.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                            if c["name"] == "dodas_login")
        assert login_cookie["httpOnly"] and login_cookie["sameSite"] == "Lax" and login_cookie["path"] == "/web"
        forged = _code(issuer, form, "mallory")
        assert forged.startswith(url + "/web/callback?") and "code=" in forged

        alice.get(forged)
        message = text_of(alice, "p.error")
        assert REFUSED in message and "log in again" in message, message
        assert "Internal Server Error" not in alice.page_source
        assert not [c for c in alice.get_cookies() if c["name"] == "dodas_session"], "alice is signed in as no one"
        alice.get(url + "/web/deployments")
        wait_for(alice, lambda d: d.current_url.startswith(issuer.url), message="the dashboard to send alice to log in")
        assert "mallory" not in alice.page_source

        # alice's own login, in the same browser, still works, as herself
        login(alice, url, "alice", "alice-pw")
        assert text_of(alice, ".who").split()[0] == "alice"
        # and mallory's browser, which holds the login's cookie, is the one it finishes in
        mallory.get(forged)
        wait_for(mallory, lambda d: d.current_url == url + "/web/deployments", message="mallory's own login")
        assert text_of(mallory, ".who").split()[0] == "mallory"
    finally:
        mallory.quit()
        alice.quit()


def test_the_forged_callback_over_http_neither_signs_in_nor_spends_the_login(site):
    url, issuer, log = site
    with _client(url) as mallory, _client(url) as alice:
        q = _start(mallory)
        callback = _code(issuer, q, "mallory")
        r = alice.get(callback)
        assert r.status_code == 400 and REFUSED in unescape(r.text), r.text
        assert "dodas_session" not in r.headers.get("set-cookie", ""), "no session is handed out"
        assert _who(alice) is None
        alice.cookies.set("dodas_login", "A" * 43, path="/web")  # a pre-login cookie, but not mallory's
        assert alice.get(callback).status_code == 400 and _who(alice) is None
        # the state was not spent by the wrong browser: its own still finishes, once
        r = mallory.get(callback)
        assert r.status_code == 303 and r.headers["location"] == "/web/deployments", r.text
        assert _who(mallory) == "mallory"
        assert mallory.get(callback).status_code == 400, "a state is used once"
    assert "Traceback" not in log.read_text()


def test_a_code_minted_with_another_nonce_is_refused(site):
    """The code's PKCE challenge is the login's own, but the issuer was given
    another nonce (or none): the ID token then answers another login."""
    url, issuer, _log = site
    for nonce in ("a-nonce-of-another-login", None):
        with _client(url) as browser:
            q = _start(browser)
            assert len(q["nonce"]) >= 16
            forged = {**q, "nonce": nonce} if nonce else {k: v for k, v in q.items() if k != "nonce"}
            r = browser.get(_code(issuer, forged, "mallory"))
            assert r.status_code == 401, r.text
            assert "nonce does not match" in unescape(r.text) and "Nobody was signed in" in unescape(r.text)
            assert _who(browser) is None


def test_two_logins_in_two_tabs_both_finish(site):
    url, issuer, _log = site
    with _client(url) as browser:
        first, second = _start(browser), _start(browser)
        assert first["state"] != second["state"] and first["nonce"] != second["nonce"]
        for q in (first, second):
            r = browser.get(_code(issuer, q, "alice"))
            assert r.status_code == 303, r.text
        assert _who(browser) == "alice"


def test_the_issuers_id_token_carries_the_nonce_and_is_typed_as_one(site):
    """The development issuer, as Keycloak and IAM do: PKCE S256 and the nonce
    in the ID token, whose header says it is not an access token."""
    _url, issuer, _log = site
    doc = httpx.get(issuer.url + "/.well-known/openid-configuration").json()
    assert doc["code_challenge_methods_supported"] == ["S256"] and "nonce" in doc["claims_supported"]
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = issuer.issuer.cfg.clients[CLIENT].redirect_uris[0]
    q = {"response_type": "code", "client_id": CLIENT, "redirect_uri": redirect, "scope": "openid",
         "state": "s", "nonce": "n-123", "code_challenge": challenge, "code_challenge_method": "S256"}
    code = parse_qs(urlsplit(_code(issuer, q, "alice")).query)["code"][0]
    r = httpx.post(issuer.url + "/token", data={"grant_type": "authorization_code", "code": code, "client_id": CLIENT,
                                                "redirect_uri": redirect, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    head, body = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
                  for p in r.json()["id_token"].split(".")[:2])
    assert head["typ"] == "JWT" and body["nonce"] == "n-123" and body["aud"] == CLIENT


def test_the_id_token_check_refuses_what_answers_another_login(site):
    """TokenValidator.id_token against the real issuer's keys: only an ID token
    signed by the login's issuer, for this client, unexpired, with the login's
    nonce, is accepted."""
    import time

    from joserfc import jwt

    from dodas.devissuer.keys import SigningKeys
    from dodas.server.auth import AuthError, IssuerConfig, TokenValidator

    _url, running, _log = site
    validator = TokenValidator([IssuerConfig(running.url, audience="dodas")])
    now = int(time.time())
    good = {"iss": running.url, "sub": "u-1", "aud": CLIENT, "iat": now, "exp": now + 300, "nonce": "n-1"}

    def signed(claims: dict, **header: str) -> str:
        return running.issuer.sign(claims, typ="JWT") if not header else \
            jwt.encode({"alg": "RS256", **header}, claims, SigningKeys().current, algorithms=["RS256"])

    assert validator.id_token(signed(good), running.url, CLIENT, "n-1")["sub"] == "u-1"
    kid = str(running.issuer.keys.current.kid)
    refused = {
        "nonce does not match": (signed(good), "n-2"),
        "no ID token": (None, "n-1"),
        "not meant for this dashboard": (signed({**good, "aud": "another-client"}), "n-1"),
        "audience": (signed({**good, "aud": [CLIENT, "another-client"]}), "n-1"),  # no azp naming us
        "has expired": (signed({**good, "exp": now - 3600}), "n-1"),
        "not issued by": (signed({**good, "iss": "http://127.0.0.1:1"}), "n-1"),
        "signature is not valid": (signed(good, kid=kid), "n-1"),  # the issuer's kid, someone else's key
        "no subject": (signed({**good, "sub": ""}), "n-1"),
    }
    for why, (token, nonce) in refused.items():
        with pytest.raises(AuthError) as caught:
            validator.id_token(token, running.url, CLIENT, nonce)
        assert caught.value.status == 401 and why in caught.value.message, (why, caught.value.message)
    unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode()
                        for p in ({"alg": "none"}, good)) + "."
    with pytest.raises(AuthError, match="algorithm"):
        validator.id_token(unsigned, running.url, CLIENT, "n-1")
