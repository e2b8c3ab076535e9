"""The web dashboard over HTTP: a real `dodas server` process with its workers
and the simulated provider, trusting the real development issuer, which logs
users in through its authorization code + PKCE page. Every request goes over
HTTP as a browser's would (cookies, forms, redirects); nothing is mocked.
The browser itself drives the main flow in test_dashboard_browser.py.

Covered: login (PKCE, the state used once, the cookie's flags, nothing secret
in any URL), logout, CSRF, the form's widgets from a template's inputs, the
server's located messages next to the fields, the plan before anything is
made, secrets never in a page that did not ask for them, who sees what,
scale, input updates and destroy through their plans, the live stream.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support import serverproc
from support.issuer import running_issuer, users
from support.server import SIM, clean_env

from dodas.devissuer.serve import Running

TIMEOUT_S = 60.0
SECRET = "s3cret-admin-pw-0451"
USERS = {"alice": ["/cms"], "bob": [], "dave": ["/dodas/admins"]}

BOXES = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    metadata: {display_name: "Boxes for tests", category: Testing, icon: cluster}
    description: Scalable boxes on the simulated provider.
    topology_template:
      inputs:
        n:
          type: integer
          default: 1
          description: How many boxes.
          constraints: [{in_range: [1, 4]}]
        flavour: {type: string, default: small, constraints: [{valid_values: [small, large]}]}
        fast: {type: boolean, default: false}
        box_mem: {type: scalar-unit.size, default: 1 GB}
        admin_password: {type: string, default: "", description: The boxes' admin password.}
      node_templates:
        box:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: {get_input: n}}}
            host: {properties: {num_cpus: 1, mem_size: {get_input: box_mem}}}
      outputs:
        address: {value: {get_attribute: [box, public_address, 0]}}
        admin_password: {value: {get_input: admin_password}}
    """)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Running, Path]]:
    """A server on a port chosen first, so that the issuer knows the dashboard's redirect URI."""
    root = tmp_path_factory.mktemp("dash")
    port = serverproc.free_port()
    config = {"audience": "dodas", "users": users(USERS),
              "clients": [{"client_id": "dodas-dashboard", "redirect_uris": [f"http://127.0.0.1:{port}/web/callback"]}]}
    with running_issuer(root, config) as issuer:
        home = root / "home"
        (home / "config").mkdir(parents=True)
        (home / "config" / "providers.yaml").write_text(json.dumps({"providers": [SIM]}))
        catalogue = root / "catalogue"
        catalogue.mkdir()
        (catalogue / "boxes.yaml").write_text(BOXES)
        conf = root / "server.json"
        conf.write_text(json.dumps({"issuers": [{"url": issuer.url, "audience": "dodas"}],
                                    "admin_group": "/dodas/admins", "default_providers": ["sim"],
                                    "catalogue": str(catalogue), "workers": 1, "lease_seconds": 10}))
        log = root / "server.log"
        proc, url = serverproc.start(clean_env(home), log, "--config", str(conf), cwd=home, port=port)
        yield url, issuer, log
        serverproc.stop(proc)


class Browser:
    """An HTTP client that behaves as a browser for these pages: cookies, redirects by hand (to look at each)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=TIMEOUT_S, follow_redirects=False)
        self.visited: list[str] = []

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.follow(self.http.get(path, **kw))

    def post(self, path: str, data: dict[str, str], **kw: Any) -> httpx.Response:
        return self.follow(self.http.post(path, data=data, **kw))

    def follow(self, r: httpx.Response) -> httpx.Response:
        while r.status_code in (302, 303, 307):
            target = r.headers["location"]
            self.visited.append(target)
            r = self.http.get(target if target.startswith("http") else self.url + target)
        return r

    def csrf(self, page: httpx.Response) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def log_in(url: str, user: str) -> Browser:
    b = Browser(url)
    r = b.http.get("/web/deployments")
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login?next=")
    r = b.http.get(r.headers["location"])
    assert r.status_code == 303
    authorize = urlsplit(r.headers["location"])
    q = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43 and q["state"]
    assert q["client_id"] == "dodas-dashboard" and q["redirect_uri"].endswith("/web/callback")
    form = b.http.get(r.headers["location"])
    assert form.status_code == 200 and "password" in form.text
    r = b.http.post(f"{authorize.scheme}://{authorize.netloc}/authorize",
                    data={**q, "username": user, "password": f"{user}-pw"})
    assert r.status_code in (302, 303), r.text
    back = r.headers["location"]
    b.callback = back  # type: ignore[attr-defined] - kept for the replay check
    r = b.http.get(back)
    assert r.status_code == 303 and r.headers["location"] == "/web/deployments"
    return b


def wait_status(b: Browser, name: str, want: str) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        page = b.get(f"/web/deployments/{name}")
        m = re.search(r'id="status"[^>]*>([A-Z_]+)<', page.text)
        if m and m.group(1) == want and "Not made yet" not in page.text:
            return page.text
        time.sleep(0.2)
    pytest.fail(f"{name} never reached {want}:\n{page.text[-2000:]}")


def test_login_with_pkce_the_cookie_and_logout(site):
    url, _, log = site
    b = log_in(url, "alice")
    cookie = next(h for h in b.http.cookies.jar if h.name == "dodas_session")
    assert cookie.name == "dodas_session" and cookie.path == "/web" and not cookie.secure  # plain HTTP here
    assert cookie.has_nonstandard_attr("HttpOnly")
    page = b.get("/web/deployments")
    assert page.status_code == 200 and "alice" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "code=" not in "".join(b.visited) and "access_token" not in page.text

    replay = Browser(url).http.get(b.callback)  # the state is used once
    assert replay.status_code == 400 and "log in again" in unescape(replay.text)

    assert b.http.post("/web/logout", data={"csrf": "forged"}).status_code == 403, "logout needs the form's token"
    assert b.post("/web/logout", data={"csrf": b.csrf(page)}).status_code == 200
    assert b.http.get("/web/deployments").status_code == 303, "the session is gone"
    assert "-pw" not in log.read_text(), "no password in the server's log"


def test_the_form_checks_plans_and_creates(site):
    url, _, log = site
    b = log_in(url, "alice")
    cards = b.get("/web/catalogue")
    assert "Boxes for tests" in cards.text and "Testing" in cards.text
    form = b.get("/web/catalogue/boxes")
    html = form.text
    assert re.search(r'<input id="in-n" name="n"\s+type="number"\s+value="1"[^>]*min="1" max="4"', html), html
    assert re.search(r'<select id="in-flavour" name="flavour"', html) and '<option value="large">' in html
    assert 'type="checkbox" id="in-fast" name="fast"' in html
    assert re.search(r'id="in-box_mem" name="box_mem"\s+type="text"\s+value="1 GB"[^>]*pattern=', html)
    assert re.search(r'id="in-admin_password" name="admin_password"\s+type="password"\s+value=""', html)
    assert re.search(r'<label for="in-n">How many boxes\s*</label>', html), "a short description is the label"
    assert re.search(r'id="in-n-help">\(input n\)</p>', html), "the help names the input"
    csrf = b.csrf(form)

    assert b.http.post("/web/catalogue/boxes", data={"name": "nocsrf", "n": "1"}).status_code == 403
    bad = b.post("/web/catalogue/boxes", data={"csrf": csrf, "name": "b1", "n": "9", "box_mem": "lots",
                                               "admin_password": SECRET})
    assert bad.status_code == 422
    errors = dict(re.findall(r'id="in-([a-z_]+)-err" role="alert">([^<]*)<', bad.text))
    assert unescape(errors["n"]) == "Outside the template's bounds (from 1 to 4): got 9.", errors
    assert "scalar-unit.size" in errors["box_mem"] and "lots" in unescape(errors["box_mem"])
    assert SECRET not in bad.text, "a secret input is never sent back"
    assert "template.yaml" not in bad.text and "/requests/" not in bad.text, "the server's copy is named nowhere"

    plan = b.post("/web/catalogue/boxes", data={"csrf": csrf, "name": "b1", "n": "2", "flavour": "large",
                                                "box_mem": "2 GB", "admin_password": SECRET})
    assert plan.status_code == 200 and "Confirm" in plan.text
    assert "<strong>2</strong> to create" in plan.text and "box[1]" in plan.text and "sim" in plan.text
    assert SECRET not in plan.text
    assert b.get("/web/deployments/b1").status_code == 404, "nothing is made before the plan is confirmed"
    draft = re.search(r'name="draft" value="([^"]+)"', plan.text).group(1)
    done = b.post("/web/confirm", data={"csrf": csrf, "draft": draft})
    assert done.status_code == 200 and "/web/deployments/b1" in b.visited[-1]
    page = wait_status(b, "b1", "CREATE_COMPLETE")
    assert page.count('class="state-badge state-created"') == 2 or page.count("state-started") == 2 or \
        len(re.findall(r'data-instance="box\[\d\]"', page)) == 2
    assert SECRET not in page and "********" in page, "the secret output is masked in the page"
    assert b.post("/web/confirm", data={"csrf": csrf, "draft": draft}).status_code == 410, "a plan is confirmed once"
    assert SECRET not in log.read_text()


def test_secrets_are_revealed_only_on_request(site):
    url, _, _ = site
    b = log_in(url, "alice")
    form = b.get("/web/catalogue/boxes")
    csrf = b.csrf(form)
    plan = b.post("/web/catalogue/boxes", data={"csrf": csrf, "name": "r1", "admin_password": SECRET})
    b.post("/web/confirm", data={"csrf": csrf, "draft": re.search(r'name="draft" value="([^"]+)"', plan.text)[1]})
    page = wait_status(b, "r1", "CREATE_COMPLETE")
    assert SECRET not in page
    assert b.http.post("/web/deployments/r1/reveal", data={"output": "admin_password"}).status_code == 403
    shown = b.http.post("/web/deployments/r1/reveal", data={"csrf": csrf, "output": "admin_password"},
                        headers={"Accept": "application/json"})
    assert shown.status_code == 200 and shown.json()["value"] == SECRET
    assert shown.headers["cache-control"] == "no-store"
    assert SECRET not in b.get("/web/deployments/r1").text, "masked again in the page"

    other = log_in(url, "bob")
    assert other.get("/web/deployments/r1").status_code == 404, "another user's deployment does not exist for them"
    assert other.http.post("/web/deployments/r1/reveal", data={"csrf": other.csrf(other.get("/web/catalogue")),
                                                                "output": "admin_password"}).status_code == 404
    admin = log_in(url, "dave")
    listing = admin.get("/web/deployments")
    assert "r1" in listing.text and re.search(r"r1</a></td>.*?<td[^>]*>alice</td>", listing.text, re.S), listing.text


def test_scale_update_and_destroy_through_their_plans(site):
    url, _, _ = site
    b = log_in(url, "alice")
    csrf = b.csrf(b.get("/web/catalogue/boxes"))
    plan = b.post("/web/catalogue/boxes", data={"csrf": csrf, "name": "s1"})
    b.post("/web/confirm", data={"csrf": csrf, "draft": re.search(r'name="draft" value="([^"]+)"', plan.text)[1]})
    page = wait_status(b, "s1", "CREATE_COMPLETE")
    assert '<option value="box">box (now 1)</option>' in page

    scale = b.post("/web/deployments/s1/scale", data={"csrf": csrf, "node": "box", "count": "3"})
    assert "<strong>2</strong> to create" in scale.text and "box[2]" in scale.text
    b.post("/web/confirm", data={"csrf": csrf, "draft": re.search(r'name="draft" value="([^"]+)"', scale.text)[1]})
    deadline = time.monotonic() + TIMEOUT_S
    while len(re.findall(r'data-instance="box\[\d\]"', b.get("/web/deployments/s1").text)) != 3:
        assert time.monotonic() < deadline, "never scaled to 3"
        time.sleep(0.2)
    wait_status(b, "s1", "UPDATE_COMPLETE")

    inputs = b.get("/web/deployments/s1/inputs")
    assert 'value="3"' in inputs.text and "Leave empty to keep the current value." in inputs.text
    bad = b.post("/web/deployments/s1/inputs", data={"csrf": csrf, "n": "0"})
    assert bad.status_code == 422 and "Outside the template's bounds (from 1 to 4): got 0." in unescape(bad.text)
    down = b.post("/web/deployments/s1/inputs", data={"csrf": csrf, "n": "1"})
    assert "<strong>2</strong> to delete" in down.text
    b.post("/web/confirm", data={"csrf": csrf, "draft": re.search(r'name="draft" value="([^"]+)"', down.text)[1]})
    deadline = time.monotonic() + TIMEOUT_S
    while len(re.findall(r'data-instance="box\[\d\]"', b.get("/web/deployments/s1").text)) != 1:
        assert time.monotonic() < deadline, "never scaled down to 1"
        time.sleep(0.2)

    wrong = b.post("/web/deployments/s1/destroy", data={"csrf": csrf, "confirm_name": "s2"})
    assert wrong.status_code == 422 and "type &#34;s1&#34; to confirm" in wrong.text
    b.post("/web/deployments/s1/destroy", data={"csrf": csrf, "confirm_name": "s1"})
    wait_status(b, "s1", "DELETE_COMPLETE")


def test_the_live_stream_sends_states_and_log(site):
    url, _, _ = site
    b = log_in(url, "alice")
    csrf = b.csrf(b.get("/web/catalogue/boxes"))
    plan = b.post("/web/catalogue/boxes", data={"csrf": csrf, "name": "l1", "n": "2"})
    b.post("/web/confirm", data={"csrf": csrf, "draft": re.search(r'name="draft" value="([^"]+)"', plan.text)[1]})
    seen: dict[str, list[Any]] = {"states": [], "log": []}
    with b.http.stream("GET", "/web/deployments/l1/live") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                seen[kind].append(json.loads(line[5:]))
                if kind == "states" and seen["states"][-1]["status"] == "CREATE_COMPLETE":
                    break
    last = seen["states"][-1]
    assert last["nodes"] == {"box": "created"} or set(last["nodes"].values()) <= {"created", "started"}, last
    assert [i["id"] for i in last["instances"]] == ["box[0]", "box[1]"]
    assert len(seen["states"]) >= 2, "the stream sent the change, not only the end"
    assert any(e["instance"] == "box[1]" for e in seen["log"])
