"""A shared server's rules (services/tenancy.py) tried as a hostile user would:
real `dodas server` processes on loopback, the simulated provider, the real
development issuer and real tokens, the v1 API, IM's API and the dashboard
(logged in through the issuer's page) over HTTP; nothing is mocked.

Covered: scaling over the quota through every face (v1 scale, v1 apply with a
larger count, IM's count change, the dashboard's scale form and its confirm)
is refused and changes nothing, and a worker refuses a request queued within
the quota that is over it when it runs; the autoscaler capped by its owner's
quota says so in its decision; work queued behind a destroy is refused (409)
on every face and a worker never re-creates a destroyed deployment (only an
explicit create does); forget drops the owner's row (the name is free, no
ghost is listed); host paths in a template for the server's own machine; no
answer names the server's files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import serverproc
from support.issuer import USERS, running_issuer, users
from support.paths import ROOT
from support.server import API, SIM, TIMEOUT_S, Server, boxes, clean_env
from support.webform import hidden, log_in

IM = "/im/infrastructures"
YAML = {"Content-Type": "text/yaml"}
OVER = "over the user quota of alice: 4 machines at most"
DATA = Path(__file__).parent / "data" / "elastic"


@dataclass
class Site:
    """An issuer that knows the dashboard's redirect URI, and servers started on that one port, one at a time."""

    issuer: Any
    port: int
    answers: list[tuple[str, str]]

    def start(self, home: Path, providers: list[dict[str, Any]] | None = None, **over: Any) -> Server:
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "providers.yaml").write_text(json.dumps({"providers": providers or [SIM]}))
        conf = {"issuers": [{"url": self.issuer.url, "audience": "dodas"}], "admin_group": "/dodas/admins",
                "default_providers": [(providers or [SIM])[0]["name"]], "workers": 1, "lease_seconds": 10,
                "user_quota": {"instances": 4}, **over}
        (home / "server.json").write_text(json.dumps(conf))
        log = home / "server.log"
        log.touch()
        proc, url = serverproc.start(clean_env(home), log, "--config", str(home / "server.json"), cwd=home,
                                     port=self.port)
        return Server(url, home, proc, log, self.issuer)

    def seen(self, where: str, r: httpx.Response) -> httpx.Response:
        """Keep an answer, to look for the server's paths in all of them at the end."""
        self.answers.append((where, r.text))
        return r


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("tenancy")
    port = serverproc.free_port()
    config = {"audience": "dodas", "users": users(USERS),
              "clients": [{"client_id": "dodas-cli"},
                          {"client_id": "dodas-dashboard", "redirect_uris": [f"http://127.0.0.1:{port}/web/callback"]}]}
    with running_issuer(root, config) as issuer:
        yield Site(issuer, port, [])


def message(r: httpx.Response) -> str:
    body = r.json()
    return body["error"]["message"] if "error" in body else body["message"]


def said(r: httpx.Response) -> str:
    """What an answer says: an error's message in JSON, or a page's text."""
    if r.headers.get("content-type", "").startswith("application/json"):
        return message(r)
    return unescape(r.text)


def instances(server: Server, name: str) -> list[str]:
    return sorted(i["id"] for i in server.status(name)["instances"] if i["state"] != "deleted")


# -- scaling over the quota ---------------------------------------------------------------------------
def test_scaling_over_the_quota_is_refused_through_every_face(site, tmp_path):
    server = site.start(tmp_path / "home")
    try:
        alice = server.as_("alice")
        assert alice.create("q", boxes(n=2, cpus=1)).status_code == 202
        dep_id = alice.wait("q")["id"]
        assert instances(server, "q") == ["box[0]", "box[1]"]

        r = site.seen("v1 scale", alice.post(f"{API}/q/scale", json={"node": "box", "count": 20}))
        assert r.status_code == 403 and OVER in message(r), r.text
        bigger = {"template": boxes(n=2, cpus=1), "inputs": {"n": 20}, "template_name": "q.yaml", "yes": True}
        r = site.seen("v1 apply", alice.post(f"{API}/q/apply", json=bigger))
        assert r.status_code == 403 and OVER in message(r), r.text
        r = site.seen("IM count", server.call("POST", f"{IM}/q", content=boxes(n=2, cpus=1, count=20), headers=YAML,
                                              accept="application/json"))
        assert r.status_code == 403 and OVER in message(r), r.text

        b = log_in(server.url, "alice")
        csrf = b.csrf()
        r = site.seen("dashboard scale", b.post("/web/deployments/q/scale", data={"csrf": csrf, "node": "box",
                                                                                   "count": "20"}))
        assert r.status_code == 403 and OVER in unescape(r.text), r.text[-2000:]
        # a plan within the quota, confirmed once the quota was used by another deployment
        within = b.post("/web/deployments/q/scale", data={"csrf": csrf, "node": "box", "count": "3"})
        assert within.status_code == 200, within.text[-2000:]
        assert alice.create("other", boxes(n=2, cpus=1)).status_code == 202
        alice.wait("other")
        r = site.seen("dashboard confirm", b.post("/web/confirm",
                                                  data={"csrf": csrf, "draft": hidden(within, "draft")}))
        assert r.status_code == 403 and "over the user quota of alice" in unescape(r.text), r.text[-2000:]
        b.close()

        view = alice.wait("q")  # nothing was queued, nothing changed
        assert view["work"] == [] and instances(server, "q") == ["box[0]", "box[1]"]
        assert len(server.records(dep_id)) == 2
        # within the quota, scaling works as before
        assert alice.post(f"{API}/other/scale", json={"node": "box", "count": 1}).status_code == 202
        alice.wait("other", ("UPDATE_COMPLETE",))
        assert alice.post(f"{API}/q/scale", json={"node": "box", "count": 3}).status_code == 202
        alice.wait("q", ("UPDATE_COMPLETE",))
        assert instances(server, "q") == ["box[0]", "box[1]", "box[2]"]
    finally:
        server.stop()


def test_a_worker_holds_queued_work_to_the_quota_when_it_runs(site, tmp_path):
    """Two scales each within the quota when asked, over it together: the worker
    refuses the second when it runs (the quota recorded with the request)."""
    home = tmp_path / "home"
    server = site.start(home)
    alice = server.as_("alice")
    for name in ("a", "b"):
        assert alice.create(name, boxes(n=1, cpus=1)).status_code == 202
        alice.wait(name)
    server.stop()
    idle = site.start(home, workers=0)  # takes requests, runs none
    try:
        alice = idle.as_("alice")
        for name in ("a", "b"):  # 3 + 1 and 1 + 3: each within 4 while the other is still 1
            r = alice.post(f"{API}/{name}/scale", json={"node": "box", "count": 3})
            assert r.status_code == 202, r.text
    finally:
        idle.stop()
    working = site.start(home)
    try:
        working.settled("a")
        working.settled("b")
        assert (len(instances(working, "a")), len(instances(working, "b"))) == (3, 1)
        refused = [i for i in _items(working, "b") if i.operation == "scale"]
        assert [i.status for i in refused] == ["failed"] and OVER in refused[0].error, refused
        shown = working.v1("alice", "GET", "/deployments/b").json()
        assert shown["status"] == "CREATE_COMPLETE" and shown["work"] == [], shown
    finally:
        working.stop()


# -- the autoscaler --------------------------------------------------------------------------------
ELASTIC = boxes(n=2, cpus=1, max_instances=4)


class _RecordedSpark(BaseHTTPRequestHandler):
    """A Spark master's UI answering what a real one answered while an application waited for cores."""

    def do_GET(self) -> None:  # http.server's protocol
        if self.path.startswith("/json"):
            body, kind = (DATA / "spark_master_waiting.json").read_bytes(), "application/json"
        elif self.path.startswith("/app"):
            body, kind = (DATA / "spark_app_waiting.html").read_bytes(), "text/html"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_autoscaler_is_capped_by_its_owners_quota_and_says_so(site, tmp_path, monkeypatch):
    from dodas.elastic.decide import Instance, Memory
    from dodas.elastic.policy import Policy
    from dodas.services import autoscale

    home = tmp_path / "home"
    server = site.start(home)
    master = ThreadingHTTPServer(("127.0.0.1", 0), _RecordedSpark)
    threading.Thread(target=master.serve_forever, daemon=True).start()
    try:
        alice = server.as_("alice")
        r = alice.create("e", ELASTIC)
        assert r.status_code == 202, r.text
        alice.wait("e")
        assert alice.create("one", boxes(n=1, cpus=1)).status_code == 202
        alice.wait("one")
        monkeypatch.setenv("DODAS_HOME", str(home))  # this process reads the server's state database
        monkeypatch.delenv("DODAS_DB_URL", raising=False)
        policy = Policy(node="box", count_input="n", min_instances=1, max_instances=4, idle_time=60.0, max_booting=2,
                        cooldown=30.0, workload="spark", poll_interval=5.0, boot_timeout=300.0, source="policy grow")
        target = autoscale.Target("e", server.status("e")["id"], policy,
                                  {"master_ui_url": f"http://127.0.0.1:{master.server_address[1]}"}, 1,
                                  [Instance("box[0]", 0, "started", "127.77.200.2"),
                                   Instance("box[1]", 1, "started", "127.77.200.3")])
        free, _, _ = autoscale.poll(target, Memory(), time.time())
        assert (free.action, free.count) == ("add", 4), free  # 2 cores wait: without a quota, 2 more
        capped, _, _ = autoscale.poll(target, Memory(), time.time(), cap=autoscale.quota_cap)
        assert (capped.action, capped.count) == ("add", 3) and "quota 1" in capped.reason, capped
        assert alice.create("two", boxes(n=1, cpus=1)).status_code == 202  # 2 + 1 + 1: the quota is full
        alice.wait("two")
        full, _, _ = autoscale.poll(target, Memory(), time.time(), cap=autoscale.quota_cap)
        assert (full.action, full.count) == ("none", 2) and "quota allows no more" in full.reason, full
    finally:
        master.shutdown()
        server.stop()


# -- what may follow a destroy --------------------------------------------------------------------
def test_work_behind_a_destroy_is_refused_and_nothing_re_creates_it(site, tmp_path):
    home = tmp_path / "home"
    server = site.start(home)
    alice = server.as_("alice")
    assert alice.create("d", boxes(n=2, cpus=1)).status_code == 202
    dep_id = alice.wait("d")["id"]
    b = log_in(server.url, "alice")
    csrf = b.csrf()
    inputs = b.post("/web/deployments/d/inputs", data={"csrf": csrf, "n": "1"})
    assert inputs.status_code == 200, inputs.text[-2000:]
    draft = hidden(inputs, "draft")
    server.stop()

    idle = site.start(home, workers=0)  # the destroy stays queued
    try:
        alice = idle.as_("alice")
        assert alice.delete(f"{API}/d").status_code == 202
        busy = 'deployment "d" is being destroyed'
        answers = {
            "v1 scale": alice.post(f"{API}/d/scale", json={"node": "box", "count": 3}),
            "v1 apply": alice.post(f"{API}/d/apply", json={"template": boxes(n=2, cpus=1), "yes": True}),
            "IM count": idle.call("POST", f"{IM}/d", content=boxes(count=3), headers=YAML, accept="application/json"),
            "IM reconfigure": idle.call("PUT", f"{IM}/d/reconfigure", accept="application/json"),
            "dashboard scale": b.post("/web/deployments/d/scale", data={"csrf": csrf, "node": "box", "count": "3"}),
            "dashboard confirm": b.post("/web/confirm", data={"csrf": csrf, "draft": draft}),
        }
        for where, r in answers.items():
            site.seen(where, r)
            assert r.status_code == 409 and busy in said(r), (where, r.status_code, r.text[-1500:])
        assert [w["operation"] for w in idle.status("d")["work"]] == ["destroy"]
    finally:
        b.close()
        idle.stop()

    working = site.start(home)
    try:
        assert working.settled("d")["status"] == "DELETE_COMPLETE" and working.records(dep_id) == []
        alice = working.as_("alice")
        r = site.seen("apply after", alice.post(f"{API}/d/apply", json={"template": boxes(n=2, cpus=1), "yes": True}))
        assert r.status_code == 409 and "was destroyed" in message(r), r.text
        r = site.seen("scale after", alice.post(f"{API}/d/scale", json={"node": "box", "count": 1}))
        assert r.status_code == 409, r.text
        # an apply that reached the queue behind the destroy anyway (a race the faces cannot close) fails at
        # the worker, making nothing
        from dodas.state import queue
        with server_state(working.home):
            queue.enqueue("apply", "d", {"template_text": boxes(n=2, cpus=1), "inputs": {}, "options": {
                "providers": ["sim"], "allow_local": False, "fetch_allow": []}}, "someone")
        view = working.settled("d")
        assert view["status"] == "DELETE_COMPLETE" and working.records(dep_id) == []
        failed = [i for i in _items(working, "d") if i.operation == "apply"][0]
        assert failed.status == "failed" and "was destroyed before this apply ran" in failed.error, failed
        # an explicit create makes it anew, under its name
        r = alice.create("d", boxes(n=1, cpus=1))
        assert r.status_code == 202, r.text
        assert alice.wait("d")["status"] == "CREATE_COMPLETE" and instances(working, "d") == ["box[0]"]
        assert working.as_("bob").create("d", boxes()).status_code == 409  # not bob's to make anew
    finally:
        working.stop()


def _items(server: Server, name: str) -> list[Any]:
    """The deployment's work items, read from the server's state database by this process."""
    from dodas.state import queue
    with server_state(server.home):
        return queue.items(deployment_name=name)


@contextmanager
def server_state(home: Path) -> Iterator[None]:
    """This process reads and writes the state database of the server on `home`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DODAS_HOME", str(home))
        mp.delenv("DODAS_DB_URL", raising=False)
        yield


# -- forget -------------------------------------------------------------------------------------
def test_forget_frees_the_name_and_leaves_no_ghost(site, tmp_path):
    home = tmp_path / "home"
    server = site.start(home)
    try:
        alice, bob = server.as_("alice"), server.as_("bob")
        for name in ("f", "g"):
            assert alice.create(name, boxes(n=1, cpus=1)).status_code == 202
            alice.wait(name)
        r = site.seen("forget live", alice.post(f"{API}/f/forget"))
        assert r.status_code == 409 and "not destroyed" in message(r), r.text
        assert bob.post(f"{API}/f/forget").status_code == 404
        for name in ("f", "g"):
            assert alice.delete(f"{API}/{name}").status_code == 202
            alice.wait(name, ("DELETE_COMPLETE",))
        r = alice.post(f"{API}/f/forget")
        assert r.status_code == 200 and r.json()["forgotten"] is True, r.text
        # the operator's `dodas forget` on the server's database frees the name too
        done = subprocess.run([sys.executable, "-m", "dodas", "forget", "g", "--json"], env=clean_env(home),
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        assert alice.names() == set() and alice.get(f"{API}/f").status_code == 404
        listed = alice.get(API).json()["items"]
        assert [d for d in listed if d["status"] == "QUEUED"] == []
        for name in ("f", "g"):  # anyone may take the names again
            assert bob.create(name, boxes(n=1, cpus=1)).status_code == 202
            bob.wait(name)
        assert bob.names() == {"f", "g"} and alice.names() == set()
    finally:
        server.stop()


# -- paths of the server's machine, and the server's files in answers ------------------------------------
def test_host_paths_for_the_servers_own_machine_are_refused(site, tmp_path):
    root_only = tmp_path / "root-only"
    root_only.mkdir(mode=0o700)
    (root_only / "secret").write_text("not for users")
    here = {"name": "here", "type": "local", "rank": 1}
    server = site.start(tmp_path / "home", providers=[here], allow_local=True, default_providers=["here"])
    try:
        alice = server.as_("alice")
        r = site.seen("xcache data_dir", alice.post(API, json={"name": "xc", "catalogue": "xcache",
                                                               "cli_inputs": {"data_dir": str(root_only)}}))
        assert r.status_code == 422, r.text
        diags = r.json()["error"]["diagnostics"]
        assert [(d["file"], d["message"].split(":")[0]) for d in diags] == [("xcache", 'node "origin"')], diags
        assert "export_path names a path of the machine it runs on" in diags[0]["message"], diags
        ram = "        ram: { get_input: ram }\n"
        cache = (ROOT / "templates" / "xcache.yaml").read_text().replace(ram, f"{ram}        cache_path: {root_only}\n")
        r = site.seen("cache_path", alice.post(API, json={"name": "xc", "template": cache,
                                                          "template_name": "cache.yaml"}))
        assert r.status_code == 422, r.text
        diags = r.json()["error"]["diagnostics"]
        line = next(n for n, t in enumerate(cache.splitlines(), 1) if "cache_path:" in t)
        assert [(d["file"], d["line"]) for d in diags] == [("cache.yaml", line)], diags
        assert "cache_path names a path of the machine it runs on" in diags[0]["message"], diags
        assert alice.get(f"{API}/xc").status_code == 404 and not (server.home / "data" / "local").exists()
    finally:
        server.stop()


def test_a_cloud_vm_may_name_its_own_paths():
    """The same properties on a cloud's VMs, made for the deployment alone, are the user's own."""
    from dodas.model.template import Template
    from dodas.services import planning, untrusted
    from dodas.tosca.inputs import GivenInput

    tpl = Template.read(str(ROOT / "templates" / "xcache.yaml"))
    plan = planning.plan_given(tpl, {"data_dir": GivenInput("/data", "<-i data_dir>", 1, 1, from_cli=True)},
                               offline=True, allow_external_playbooks=False, strict=False, environment=False)
    assert untrusted.host_paths(plan, tpl, ["ec2", "openstack"]) == []
    found = untrusted.host_paths(plan, tpl, ["openstack", "ssh"])
    assert len(found) == 1 and "provider type ssh" in found[0].message, found


def test_no_answer_names_the_servers_files(site, tmp_path):
    home = tmp_path / "home"
    server = site.start(home, user_quota={})
    try:
        alice = server.as_("alice")
        huge = boxes(n=5000, cpus=1)
        asks = {
            "limit": alice.create("huge", huge),
            "limit IM": server.call("POST", IM, content=huge, headers=YAML, accept="application/json"),
            "unknown provider": alice.create("p", boxes(), provider="nope"),
            "bad YAML": alice.create("y", "topology_template: [\n"),
            "plan": alice.post(f"{API}/fine/plan", json={"template": boxes(), "template_name": "fine.yaml"}),
        }
        for where, r in asks.items():
            site.seen(where, r)
        assert asks["limit"].status_code == 422
        assert "limits.max_instances_per_node in the server's configuration" in asks["limit"].text, asks["limit"].text
        assert "the server's provider configuration" in asks["unknown provider"].text, asks["unknown provider"].text
        assert asks["plan"].status_code == 200 and asks["plan"].json()["template"] == "fine.yaml"
        b = log_in(server.url, "alice")
        page = b.post("/web/catalogue/xcache", data={"csrf": b.csrf(), "name": "big", "cache_size": "2 GiB",
                                                     "ram": "0 GiB"})
        site.seen("dashboard form", page)
        b.close()
    finally:
        server.stop()
    # every answer of every test above
    secrets = {str(home.parent.parent), str(Path.home()) + "/", "server.json", "/requests/", "config.yaml",
               str(ROOT / "src")}
    leaks = [(where, s) for where, text in site.answers for s in secrets if s in text]
    assert len(site.answers) >= 7 and not leaks, leaks
