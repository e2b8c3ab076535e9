"""`dodas server` end to end: a real server process (`python -m dodas server`) on
loopback, with its own DODAS_HOME, its in-process workers and the simulated
provider (no machine is made: its "servers" are files under the data directory),
trusting the real development issuer, which gives each user a token through the
password grant. Every request goes over HTTP; nothing is mocked.

Covered: who sees what (the owner, a group's members, the admin group, everyone
else: 404, never 403, for what one may not read), quotas, what the server refuses
in an untrusted request (playbooks from elsewhere, imports, large bodies, the
local provider, bad templates: with located messages), destroy, the remote CLI
(DODAS_SERVER + DODAS_TOKEN), and the operational endpoints.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from support.issuer import token
from support.server import API, SIM, TIMEOUT_S, Api, Server, boxes, clean_env
from support.zygote import run_dodas


def error(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]["message"]


# -- 1. a deployment is its owner's ----------------------------------------------------------
def test_another_user_sees_nothing_of_a_deployment(server):
    alice, bob = server.as_("alice"), server.as_("bob")
    r = alice.create("mine")
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["name"] == "mine" and [w["operation"] for w in started["work"]] == ["apply"]
    assert started["plan"]["summary"]["create"] == 1
    view = alice.wait("mine")
    assert [(i["node"], i["state"]) for i in view["instances"]] == [("box", "created")]
    assert view["provider"] == "sim" and len(server.records(view["id"])) == 1
    outs = alice.get(f"{API}/mine/outputs")
    assert outs.status_code == 200 and outs.json()["address"]["known"] is True, outs.text
    assert outs.json()["address"]["value"] == view["instances"][0]["address"]
    evs = alice.get(f"{API}/mine/events").json()["items"]
    assert ("box[0]", "created") in [(e["instance"], e["message"]) for e in evs], evs
    status, frames = alice.stream("mine")
    assert status == 200 and frames[-1][0] == "end" and json.loads(frames[-1][1]) == {"status": "CREATE_COMPLETE"}
    assert [json.loads(d)["id"] for k, d in frames if k == "event"] == [e["id"] for e in evs]
    assert "mine" in alice.names()

    # bob: the same answer as for a name that does not exist, whatever he asks
    nothing = bob.get(f"{API}/never-made")
    assert nothing.status_code == 404 and error(nothing) == 'no deployment named "never-made"'
    body = {"template": boxes(2), "template_name": "mine.yaml"}
    answers = {
        "get": bob.get(f"{API}/mine"),
        "outputs": bob.get(f"{API}/mine/outputs"),
        "secrets": bob.get(f"{API}/mine/outputs", params={"show_secrets": True}),
        "events": bob.get(f"{API}/mine/events"),
        "plan": bob.post(f"{API}/mine/plan", json=body),
        "apply": bob.post(f"{API}/mine/apply", json={**body, "yes": True}),
        "scale": bob.post(f"{API}/mine/scale", json={"node": "box", "count": 3}),
        "delete": bob.delete(f"{API}/mine"),
    }
    assert {k: r.status_code for k, r in answers.items()} == {k: 404 for k in answers}
    assert {k: error(r) for k, r in answers.items()} == {k: 'no deployment named "mine"' for k in answers}
    assert bob.stream("mine")[0] == 404
    assert "mine" not in bob.names()
    assert bob.create("mine").status_code == 409  # the name is taken, but nothing of it is shown
    # nothing bob did changed it
    after = alice.wait("mine")
    assert after["status"] == "CREATE_COMPLETE" and len(after["instances"]) == 1
    assert len(server.records(view["id"])) == 1

    anonymous = server.as_(None)
    for r in (anonymous.get(API), anonymous.get(f"{API}/mine"), anonymous.delete(f"{API}/mine"),
              anonymous.post(API, json={"name": "x", "template": boxes()})):
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (r, r.headers)
        assert "access token" in error(r)
    forged = httpx.get(server.url + API, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401 and forged.headers["www-authenticate"].startswith("Bearer")
    basic = httpx.get(server.url + API, headers={"Authorization": "Basic YWxpY2U6YWxpY2UtcHc="})
    assert basic.status_code == 401


# -- 2. groups and the admin group -------------------------------------------------------------
def test_group_members_read_and_operate_as_the_policy_says_and_admins_see_all(server):
    alice, carol, frank, bob, dave = (server.as_(u) for u in ("alice", "carol", "frank", "bob", "dave"))
    assert alice.create("shared", group="/cms").status_code == 202
    assert alice.create("readonly", group="/atlas").status_code == 202
    assert alice.create("private").status_code == 202
    r = carol.create("not-mine", group="/atlas")
    assert r.status_code == 403 and '"/atlas"' in error(r)
    for name in ("shared", "readonly", "private"):
        alice.wait(name)

    # /cms may operate: carol reads and scales alice's deployment
    assert carol.get(f"{API}/shared").status_code == 200
    assert carol.names() == {"shared"}
    r = carol.post(f"{API}/shared/scale", json={"node": "box", "count": 2})
    assert r.status_code == 202, r.text
    view = carol.wait("shared", ("CREATE_COMPLETE", "UPDATE_COMPLETE"))
    assert sorted(i["id"] for i in view["instances"]) == ["box[0]", "box[1]"]
    assert len(server.records(view["id"])) == 2
    assert carol.get(f"{API}/readonly").status_code == 404 and carol.get(f"{API}/private").status_code == 404

    # /atlas may only read: frank sees it, and is told he may not change it
    assert frank.names() == {"readonly"}
    assert frank.get(f"{API}/readonly").json()["status"] == "CREATE_COMPLETE"
    assert frank.get(f"{API}/readonly/outputs").status_code == 200
    for r in (frank.delete(f"{API}/readonly"),
              frank.post(f"{API}/readonly/scale", json={"node": "box", "count": 0}),
              frank.post(f"{API}/readonly/apply", json={"template": boxes(), "yes": True}),
              frank.get(f"{API}/readonly/outputs", params={"show_secrets": True})):
        assert r.status_code == 403, r.text
    assert "not change it" in error(frank.delete(f"{API}/readonly"))
    assert frank.wait("readonly")["status"] == "CREATE_COMPLETE"

    # bob is in neither group
    assert bob.names() == set()
    assert bob.get(f"{API}/shared").status_code == 404 and bob.get(f"{API}/readonly").status_code == 404

    # the admin group sees and deletes everything
    assert {"shared", "readonly", "private"} <= dave.names()
    for name in ("shared", "readonly", "private"):
        dep_id = dave.get(f"{API}/{name}").json()["id"]
        r = dave.delete(f"{API}/{name}")
        assert r.status_code == 202, r.text
        assert dave.wait(name, ("DELETE_COMPLETE",))["instances"] == []
        assert server.records(dep_id) == []
    assert alice.get(f"{API}/private").json()["status"] == "DELETE_COMPLETE"


# -- 3. quotas ------------------------------------------------------------------------------------
def test_quotas_refuse_with_the_quota_named(serve):
    server = serve(user_quota={"deployments": 1, "cores": 3},
                   groups={"/cms": {"providers": ["sim"], "quota": {"deployments": 1}}})
    alice, carol = server.as_("alice"), server.as_("carol")
    r = alice.create("big", boxes(n=2, cpus=2))  # 4 cores
    assert r.status_code == 403
    assert error(r) == ("over the user quota of alice: 3 cores at most; this request would make 4 "
                        "(0 in use, 4 asked)")
    assert "big" not in alice.names() and alice.get(f"{API}/big").status_code == 404

    assert alice.create("one", group="/cms").status_code == 202
    r = alice.create("two")
    assert r.status_code == 403 and error(r).startswith("over the user quota of alice: 1 deployments at most"), \
        error(r)
    r = carol.create("three", group="/cms")
    assert r.status_code == 403 and error(r).startswith("over the group quota of /cms: 1 deployments at most"), \
        error(r)
    assert carol.create("three").status_code == 202  # her own quota is not the group's
    alice.wait("one")
    carol.wait("three")
    r = alice.post(f"{API}/one/apply", json={"template": boxes(), "inputs": {"n": 2}, "yes": True})  # 2 cores more
    assert r.status_code == 403 and "3 cores at most" in error(r), r.text

    # a destroyed deployment holds nothing
    assert alice.delete(f"{API}/one").status_code == 202
    alice.wait("one", ("DELETE_COMPLETE",))
    assert alice.create("two").status_code == 202
    assert alice.wait("two")["status"] == "CREATE_COMPLETE"


# -- 4. untrusted input --------------------------------------------------------------------------
PLAYBOOK = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: {{properties: {{num_cpus: 1, mem_size: 1 GB}}}}
    app:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: box
      interfaces:
        Standard:
          create: {playbook}
"""

IMPORT = """\
tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - {ref}
topology_template:
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
"""


def refused_template(api: Api, name: str, text: str) -> tuple[str, list[dict[str, Any]]]:
    """A create the server refuses as a template problem: (message, diagnostics)."""
    r = api.create(name, text)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err.get("diagnostics"), err
    assert api.get(f"{API}/{name}").status_code == 404  # nothing recorded
    return err["message"], err["diagnostics"]


XCACHE = """tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: {{properties: {{num_cpus: 1, mem_size: 2 GiB}}}}
    cache:
      type: tosca.nodes.dodas.XRootD.Cache
      properties:
        origin_url: "{url}"
        cache_size: 100 MiB
      requirements:
        - host: box
"""


def test_untrusted_templates_are_refused_with_located_messages(server):
    alice = server.as_("alice")
    requests = server.home / "data" / "server" / "requests"  # where the server keeps a request's template
    requests.mkdir(parents=True, exist_ok=True)
    (requests / "x.yml").write_text("- hosts: all\n  tasks: []\n")  # ../x.yml exists, and is refused all the same
    for playbook in ("/etc/passwd", "../x.yml", "../../../../../../etc/passwd"):
        _, diags = refused_template(alice, "evil", PLAYBOOK.format(playbook=playbook))
        assert [(d["file"], d["line"]) for d in diags] == [("evil.yaml", 14)], diags
        assert f'playbook "{playbook}" is outside dodas\'s playbooks' in diags[0]["message"], diags
    for ref in ("file:///etc/passwd", "https://example.invalid/types.yaml", "http://127.0.0.1:1/x.yaml"):
        _, diags = refused_template(alice, "imports", IMPORT.format(ref=ref))
        assert [(d["file"], d["line"], d["col"]) for d in diags] == [("imports.yaml", 3, 5)], diags
        assert f'remote import "{ref}"' in diags[0]["message"], diags
    # a file import names the server's own files: refused unread, the same for one that exists, one that
    # does not and a TOSCA file that would import (the answers must not tell them apart)
    from dodas import paths
    other = server.home / "data" / "server" / "other.yaml"
    other.write_text(boxes())
    for ref in ("/etc/hostname", "/no/such/file.yaml", str(paths.TYPE_LIBRARY), "../../other.yaml",
                "types.yaml", "{file: /etc/hostname}"):
        _, diags = refused_template(alice, "files", IMPORT.format(ref=ref))
        shown = ref.removeprefix("{file: ").removesuffix("}")
        if ref == str(paths.TYPE_LIBRARY):  # dodas's own files are named by their place in the package only
            shown = "dodas/tosca/library/dodas_types.yaml"
        assert [(d["file"], d["line"], d["col"], d["message"]) for d in diags] == [
            ("files.yaml", 3, 5, f'import "{shown}" names a file: a template sent to a server imports only the '
                                 "bundled types and URLs, never the server's files")], diags
    # an XCache's origin is read by the cache: on the local provider, from the server's own machine
    for url, says in (("root://127.0.0.1:1094", "reaches 127.0.0.1, a loopback address of the server's network"),
                      ("root://10.1.2.3", "reaches 10.1.2.3, a private address of the server's network"),
                      ("file:///etc/passwd", "is not root://HOST[:PORT] or roots://")):
        _, diags = refused_template(alice, "cache", XCACHE.format(url=url))
        assert [(d["file"], d["line"]) for d in diags] == [("cache.yaml", 11)], diags
        assert f'node "cache": origin_url {url!r}'.replace("'", '"') in diags[0]["message"].replace("'", '"'), diags
        assert says in diags[0]["message"], diags
    indigo = XCACHE.format(url="x").replace("tosca.nodes.dodas.XRootD.Cache", "tosca.nodes.indigo.XCache") \
        .replace('origin_url: "x"', "origin_host: 127.0.0.1")
    _, diags = refused_template(alice, "indigo", indigo)
    assert [(d["file"], d["line"]) for d in diags] == [("indigo.yaml", 11)], diags
    assert 'origin_url "root://127.0.0.1:1094" reaches 127.0.0.1, a loopback address' in diags[0]["message"], diags
    # the ML pipeline's data set is a path of the machine it runs on: the server's own, with the local provider
    from support.paths import ROOT
    pipeline = (ROOT / "templates" / "ml-pipeline.yaml").read_text()
    _, diags = refused_template(alice, "ml", pipeline.replace('dataset:\n      type: string\n      default: ""',
                                                              'dataset:\n      type: string\n      default: /etc'))
    line = next(i for i, t in enumerate(pipeline.splitlines(), 1) if "dataset: { get_input: dataset }" in t)
    assert [(d["file"], d["line"]) for d in diags] == [("ml.yaml", line)], diags
    assert "dataset names a path of the machine it runs on" in diags[0]["message"], diags
    bundled = IMPORT.format(ref="https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml")
    assert alice.create("bundled", bundled).status_code == 202  # well-known imports are the bundled library
    alice.wait("bundled")
    bad = "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n" \
          "    box:\n      type: tosca.nodes.indigo.Compute\n      capabilities:\n" \
          "        host: {properties: {num_cpus: many}}\n"
    _, diags = refused_template(alice, "bad", bad)
    assert [(d["file"], d["line"]) for d in diags] == [("bad.yaml", 7)], diags
    assert '"many" is not an integer' in diags[0]["message"]
    _, diags = refused_template(alice, "syntax", "topology_template: [\n")
    assert diags[0]["file"] == "syntax.yaml" and diags[0]["line"] >= 1

    r = alice.create("../etc", boxes())
    assert r.status_code == 422 and "not a usable deployment name" in error(r), r.text
    r = alice.post(API, json={"name": "both", "template": boxes(), "catalogue": "spark-jupyter"})
    assert r.status_code == 422 and "either template or catalogue" in error(r)
    r = alice.post(API, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert alice.names() == {"bundled"}


def raw_post(server: Server, tok: str, length: str) -> bytes:
    """A create announcing a Content-Length (that no client library would send), no body: the status line."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(f"POST {API} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {tok}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0] + b"\r\n"


def test_large_bodies_are_refused(serve):
    server = serve(max_body_bytes=4096)
    alice = server.as_("alice")
    padding = "\n".join(f"# {'x' * 70}" for _ in range(80))  # a valid template over the limit
    big = boxes() + padding + "\n"
    assert len(big) > 4096
    r = alice.create("big", big)
    assert r.status_code == 413 and error(r) == "the request body is larger than 4096 bytes"

    def chunks(data: bytes) -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]
    body = json.dumps({"name": "big", "template": big}).encode()
    r = alice.post(API, content=chunks(body), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than 4096 bytes" in error(r)
    # a length past 2**64: uvicorn's httptools parser refuses it (400) before dodas could (413)
    assert raw_post(server, alice.token, "99999999999999999999").split(b" ")[1] in (b"400", b"413")
    assert raw_post(server, alice.token, str(10**12)).startswith(b"HTTP/1.1 413 ")
    assert raw_post(server, alice.token, "-1").split(b" ")[1] in (b"400", b"413")
    assert alice.names() == set()
    # a body under the limit, sent the same way, is read whole and used
    small = json.dumps({"name": "small", "template": boxes(), "template_name": "small.yaml"}).encode()
    r = alice.post(API, content=chunks(small), headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    assert alice.wait("small")["status"] == "CREATE_COMPLETE"


LOCAL = {"name": "here", "type": "local", "rank": 2}


def test_the_local_provider_only_where_the_operator_allows_it(serve, tmp_path):
    closed = serve(providers=[SIM, LOCAL], default_providers=["sim", "here"])
    for user in ("bob", "dave"):  # an admin too: the local provider runs on the server's own machine
        api = closed.as_(user)
        assert [p["name"] for p in api.get("/api/v1/providers").json()] == ["sim"]
        r = api.create(f"local-{user}", boxes(), provider="here")
        assert r.status_code == 422, r.text
        assert error(r) == "no provider you may use can take this deployment (placement chose: here)"
        assert api.get(f"{API}/local-{user}").status_code == 404
    closed.stop()
    opened = serve(providers=[SIM, LOCAL], default_providers=["sim", "here"], allow_local=True,
                   home=tmp_path / "server-home-0")
    assert [p["name"] for p in opened.as_("bob").get("/api/v1/providers").json()] == ["sim", "here"]
    assert [p["name"] for p in opened.as_("carol").get("/api/v1/providers").json()] == ["sim"]  # /cms: sim only


# -- 5. destroy --------------------------------------------------------------------------------
def test_destroy_through_the_api_removes_every_server(server):
    alice = server.as_("alice")
    assert alice.create("doomed", boxes(n=3)).status_code == 202
    view = alice.wait("doomed")
    assert len(view["instances"]) == 3
    records = server.records(view["id"])
    assert sorted(json.loads(f.read_text())["id"] for f in records) == sorted(i["provider_id"]
                                                                             for i in view["instances"])
    r = alice.delete(f"{API}/doomed")
    assert r.status_code == 202, r.text
    assert [w["operation"] for w in r.json()["work"]] == ["destroy"]
    gone = alice.wait("doomed", ("DELETE_COMPLETE",))
    assert gone["instances"] == [] and gone["locked_by"] is None
    assert server.records(view["id"]) == []
    assert not (server.home / "data" / "simulated" / "sim" / view["id"]).exists()
    listed = {d["name"]: d["status"] for d in alice.get(API).json()["items"]}
    assert listed == {"doomed": "DELETE_COMPLETE"}
    assert alice.get(API, params={"status": "CREATE_COMPLETE"}).json()["items"] == []
    evs = [(e["instance"], e["message"]) for e in alice.get(f"{API}/doomed/events").json()["items"]]
    assert {(f"box[{i}]", "deleted") for i in range(3)} <= set(evs) and evs[-1] == (None, "everything deleted"), evs


# -- 6. the command line through the server ------------------------------------------------------
def dodas(server: Server, client_home: Path, user: str | None, *args: str,
          timeout: float = TIMEOUT_S * 2) -> subprocess.CompletedProcess:
    env = clean_env(client_home)  # the client's home: nothing of the server's state is there
    env["DODAS_SERVER"] = server.url
    if user:
        env["DODAS_TOKEN"] = token(server.issuer, user)
    return run_dodas(list(args), env=env, cwd=str(client_home), timeout=timeout)


def test_the_cli_works_through_the_server(server, tmp_path):
    client = tmp_path / "client"
    client.mkdir()
    template = client / "boxes.yaml"
    template.write_text(boxes(n=2))

    up = dodas(server, client, "alice", "up", str(template), "--name", "remote", "--yes")
    assert up.returncode == 0, (up.stdout, up.stderr, server.tail())
    assert "remote: CREATE_COMPLETE" in up.stdout, up.stdout
    assert "address" in up.stdout
    assert not (client / "data" / "state.db").exists(), "the client made no state of its own"

    listed = dodas(server, client, "alice", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["name"], d["status"]) for d in json.loads(listed.stdout)] == [("remote", "CREATE_COMPLETE")]

    st = dodas(server, client, "alice", "status", "remote", "--json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["status"] == "CREATE_COMPLETE" and status["provider"] == "sim"
    assert sorted(i["id"] for i in status["instances"]) == ["box[0]", "box[1]"]
    assert "work" not in status

    logs = dodas(server, client, "alice", "logs", "remote")  # -f follows until Ctrl-C: test_remote_cli.py
    assert logs.returncode == 0, logs.stderr
    assert "box[0]: created" in logs.stdout and "box[1]: created" in logs.stdout, logs.stdout
    logs_json = dodas(server, client, "alice", "logs", "remote", "--json")
    assert logs_json.returncode == 0
    assert len([json.loads(line) for line in logs_json.stdout.splitlines()]) == len(
        server.as_("alice").get(f"{API}/remote/events").json()["items"])

    again = dodas(server, client, "alice", "up", str(template), "--name", "remote", "--yes", "--json")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert json.loads(again.stdout)["changed"] is False

    other = dodas(server, client, "bob", "status", "remote")
    assert other.returncode == 4 and 'no deployment named "remote"' in other.stderr, (other.returncode,
                                                                                       other.stderr)
    assert dodas(server, client, "bob", "destroy", "remote", "--yes").returncode == 4
    nobody = dodas(server, client, None, "list")
    assert nobody.returncode == 1 and "Traceback" not in nobody.stderr, nobody.stderr

    gone = dodas(server, client, "alice", "destroy", "remote", "--yes")
    assert gone.returncode == 0, (gone.stdout, gone.stderr)
    assert "remote: DELETE_COMPLETE" in gone.stdout
    st = dodas(server, client, "alice", "status", "remote", "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["status"] == "DELETE_COMPLETE"
    assert server.records(status["id"]) == []
    assert json.loads(dodas(server, client, "alice", "list", "--json").stdout) == []
    # up again: the destroyed deployment is made anew, under its name
    anew = dodas(server, client, "alice", "up", str(template), "--name", "remote", "--yes", "--json")
    assert anew.returncode == 0, (anew.stdout, anew.stderr, server.tail())
    made = json.loads(anew.stdout)
    assert made["status"] == "CREATE_COMPLETE" and made["plan"]["summary"]["create"] == 2, made
    assert made["outputs"]["address"]["known"] is True
    st = json.loads(dodas(server, client, "alice", "status", "remote", "--json").stdout)
    assert len(server.records(st["id"])) == 2


def test_the_cli_reports_a_refused_template(server, tmp_path):
    client = tmp_path / "client"
    client.mkdir()
    evil = client / "evil.yaml"
    evil.write_text(PLAYBOOK.format(playbook="/etc/passwd"))
    r = dodas(server, client, "alice", "up", str(evil), "--name", "evil", "--yes")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert 'evil.yaml:14:' in r.stderr and 'playbook "/etc/passwd" is outside' in r.stderr, r.stderr
    assert server.as_("alice").names() == set()


# -- 7. operations -------------------------------------------------------------------------------
def test_health_version_metrics_and_openapi(server):
    from dodas import __version__

    anonymous = server.as_(None)
    health = anonymous.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "queued": 0}
    assert anonymous.get("/version").json() == {"version": __version__, "api": "v1"}

    alice = server.as_("alice")
    assert alice.create("counted").status_code == 202
    alice.wait("counted")
    assert alice.get(f"{API}/nothing-here").status_code == 404
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in metrics.text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    assert samples['dodas_requests_total{method="POST",route="/api/v1/deployments",status="202"}'] == 1
    assert samples['dodas_requests_total{method="GET",route="/api/v1/deployments/{name}",status="404"}'] >= 1
    assert samples['dodas_requests_total{method="GET",route="/health",status="200"}'] >= 1
    assert samples['dodas_deployments{status="CREATE_COMPLETE"}'] == 1
    assert samples["dodas_work_queue_depth"] == 0
    assert any(k.startswith("dodas_request_duration_seconds_bucket") for k in samples)
    assert not any("counted" in k or "nothing-here" in k for k in samples)  # routes, not names

    spec = anonymous.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/deployments"])
    assert {"get", "delete"} <= set(paths["/api/v1/deployments/{name}"])
    assert "/api/v1/deployments/{name}/events/stream" in paths


def test_remote_plans_compare_with_what_the_server_holds(server, tmp_path):
    """`dodas plan T --name NEW` through the server plans a creation; a changed
    template from the same file is an update, not a replacement (the server keeps
    where a template came from, not the path of its copy); another file is one."""
    client = tmp_path / "client"
    client.mkdir()
    template = client / "boxes.yaml"
    template.write_text(boxes(n=1))
    fresh = dodas(server, client, "alice", "plan", str(template), "--name", "planned", "--json")
    assert fresh.returncode == 0, (fresh.stdout, fresh.stderr)
    plan = json.loads(fresh.stdout)
    assert plan["summary"]["create"] == 1 and plan["deployment"]["exists"] is False
    assert dodas(server, client, "alice", "up", str(template), "--name", "planned", "--yes").returncode == 0

    template.write_text(boxes(n=1, cpus=1))
    changed = json.loads(dodas(server, client, "alice", "plan", str(template), "--name", "planned", "--json").stdout)
    assert changed["replaces_template"] is None and changed["deployment"]["exists"] is True
    up = dodas(server, client, "alice", "up", str(template), "--name", "planned", "--json")  # no --yes, no terminal
    assert up.returncode == 0, (up.stdout, up.stderr)
    st = json.loads(dodas(server, client, "alice", "status", "planned", "--json").stdout)
    assert st["template"] == "request:boxes.yaml"
    scaled = dodas(server, client, "alice", "scale", "planned", "box", "2", "--yes")
    assert scaled.returncode == 0, (scaled.stdout, scaled.stderr)
    st = json.loads(dodas(server, client, "alice", "status", "planned", "--json").stdout)
    assert st["template"] == "request:boxes.yaml" and len(st["instances"]) == 2, st

    other = client / "other.yaml"
    other.write_text(boxes(n=2, cpus=1))
    replaced = json.loads(dodas(server, client, "alice", "plan", str(other), "--name", "planned", "--json").stdout)
    assert replaced["replaces_template"] == "request:boxes.yaml"
    refused = dodas(server, client, "alice", "up", str(other), "--name", "planned")
    assert refused.returncode == 1 and "--yes" in refused.stderr, refused.stderr
    assert dodas(server, client, "bob", "plan", str(template), "--name", "planned").returncode == 4
