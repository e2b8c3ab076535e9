"""The browser tests' machinery (tests/support/browser.py), proved on the development
issuer's own pages before any dashboard uses it: a real Chromium runs the
authorization code flow with PKCE as a dashboard will, to a small callback
server of the test's own; the code it brings back is exchanged for an access
token that the server's validator accepts. A wrong password stays on the
issuer's page, says so, and sends nothing to the callback. A missing browser
skips the tests here and fails them in CI."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from support import browser
from support.issuer import running_issuer
import httpx
import pytest

from dodas.devissuer.serve import Running
from dodas.server.auth import IssuerConfig, TokenValidator

CLIENT_ID = "dodas-dashboard"


class Callback:
    """http://127.0.0.1:PORT/cb, answering with a plain page and remembering every request."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                ok = urlsplit(self.path).path == "/cb"
                body = b"<!doctype html><title>callback</title><h1>Back at the client</h1>" if ok else b"no"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, name="callback", daemon=True)
        self.thread.start()

    def calls(self) -> list[str]:
        """The requests for /cb (a browser also asks the site for its /favicon.ico)."""
        return [p for p in self.seen if urlsplit(p).path == "/cb"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture()
def callback() -> Iterator[Callback]:
    cb = Callback()
    yield cb
    cb.stop()


@pytest.fixture()
def issuer(tmp_path, callback) -> Iterator[Running]:
    """An issuer that knows the callback as the dashboard client's redirect URI."""
    config = {"audience": "dodas", "users": [{"username": "alice", "password": "alice-pw", "groups": ["/dodas"]}],
              "clients": [{"client_id": CLIENT_ID, "redirect_uris": [callback.url]}]}
    with running_issuer(tmp_path, config) as running:
        yield running


@pytest.fixture()
def driver(monkeypatch):
    browser.need_chromium()
    from selenium.webdriver.common import selenium_manager

    def no_downloads(*args: object) -> None:
        raise AssertionError("Selenium Manager was asked for a driver: it would try to download one")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_downloads)
    d = browser.chrome()
    yield d
    d.quit()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # 64 characters of RFC 7636's alphabet
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(issuer: Running, callback: Callback, challenge: str, state: str) -> str:
    return issuer.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": callback.url, "scope": "openid profile",
        "state": state, "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
        "code_challenge_method": "S256"})


def on_callback(driver, callback: Callback) -> dict[str, str]:
    browser.wait_for(driver, lambda d: d.current_url.startswith(callback.url + "?"),
                     message=f"the issuer to send the browser to {callback.url}")
    assert browser.text_of(driver, "h1") == "Back at the client"
    return {k: v[0] for k, v in parse_qs(urlsplit(driver.current_url).query).items()}


def test_a_browser_logs_in_with_the_code_flow_and_pkce(driver, issuer, callback, tmp_path):
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    driver.get(authorize_url(issuer, callback, challenge, state))
    assert "NOT FOR PRODUCTION" in browser.text_of(driver, ".banner")
    assert browser.text_of(driver, "h1") == "Sign in"
    shot = browser.screenshot(driver, browser.shot_path("issuer-login.png", tmp_path))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 2000
    assert driver.get_window_size()["height"] == 900, "the screenshot gives the window its size back"

    browser.fill_login(driver, "alice", "alice-pw")
    got = on_callback(driver, callback)
    assert got["state"] == state and got["code"] and "error" not in got
    assert len(callback.calls()) == 1

    form = {"grant_type": "authorization_code", "code": got["code"], "redirect_uri": callback.url,
            "client_id": CLIENT_ID, "code_verifier": verifier}
    r = httpx.post(issuer.url + "/token", data=form, timeout=30)
    assert r.status_code == 200, r.text
    ident = TokenValidator([IssuerConfig(url=issuer.url, audience="dodas")]).validate(r.json()["access_token"])
    assert ident.username == "alice" and ident.groups == frozenset({"/dodas"}) and ident.issuer == issuer.url
    again = httpx.post(issuer.url + "/token", data=form, timeout=30)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", "a code is good once"


def test_a_wrong_password_stays_on_the_issuer_and_says_so(driver, issuer, callback):
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    driver.get(authorize_url(issuer, callback, challenge, state))
    browser.fill_login(driver, "alice", "not-alices-pw")
    browser.wait_for(driver, lambda d: browser.LOGIN_ERROR in browser.text_of(d, "body"),
                     message="the issuer's wrong-password message")
    assert urlsplit(driver.current_url).netloc == urlsplit(issuer.url).netloc
    assert callback.calls() == [] and "code=" not in driver.current_url
    assert "not-alices-pw" not in driver.page_source, "the wrong password is not echoed back"
    # the form carries the request along: the right password then completes it
    browser.fill_login(driver, "alice", "alice-pw")
    got = on_callback(driver, callback)
    assert got["state"] == state and got["code"]
    r = httpx.post(issuer.url + "/token", data={"grant_type": "authorization_code", "code": got["code"],
                                                "redirect_uri": callback.url, "client_id": CLIENT_ID,
                                                "code_verifier": verifier}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("ci", [False, True])
def test_a_missing_browser_skips_here_and_fails_in_ci(pytester, monkeypatch, ci):
    for var in ("CI", "DODAS_SKIP_REPORT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    if ci:
        monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_probe="""
        from support import browser


        def test_needs_a_browser(monkeypatch, tmp_path):
            monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
            browser.chrome().quit()
        """)
    r = pytester.runpytest("-p", "support.ci_skips", "-p", "no:cacheprovider", "-q")
    out = r.stdout.str()
    if ci:
        assert r.ret == 1 and "skipped in CI, which must run every test: no browser" in out, out
    else:
        assert r.ret == 0 and "skips: 1" in out and "no-chromium missing" in out, out


@pytest.mark.parametrize("public_url", [None, "http://dodas.localtest.example:8443"])
def test_the_servers_development_issuer_knows_the_dashboards_client(tmp_path, public_url):
    """`dodas server --dev-issuer` registers the dashboard's public client, sent back
    to PUBLIC_URL/web/callback (by default, the address the server is bound to)."""
    from support import serverproc

    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DODAS_")}
    env.update({"DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1",
                "DODAS_DEV_ISSUER_PORT": str(serverproc.free_port())})
    if public_url:
        env["DODAS_SERVER_PUBLIC_URL"] = public_url
    proc, url = serverproc.start(env, tmp_path / "server.log", "--dev-issuer")
    try:
        login_file = home / "config" / "dev-issuer-login.txt"
        creds = dict(line.split(": ", 1) for line in login_file.read_text().splitlines())
        _verifier, challenge = pkce()

        def authorize(redirect_uri: str) -> httpx.Response:
            return httpx.get(creds["issuer"] + "/authorize", timeout=30, params={
                "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri, "state": "s",
                "code_challenge": challenge, "code_challenge_method": "S256"})

        r = authorize(f"{public_url or url}/web/callback")
        assert r.status_code == 200 and "Sign in" in r.text, r.text
        r = authorize("http://127.0.0.1:1/web/callback")
        assert r.status_code == 400 and "Unknown client" in r.text
    finally:
        serverproc.stop(proc)
