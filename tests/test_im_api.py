"""The Infrastructure Manager's API of `dodas server` (/im), end to end: a real
server process trusting the real development issuer, the simulated provider
(its "servers" are files under the data directory, which the tests count), and
every request over HTTP in IM's formats: TOSCA bodies as text/yaml, IM's
Authorization header (an InfrastructureManager line with `token =`, its JSON
form, or Bearer), URIs as text/uri-list or JSON by Accept, errors as IM's
`{"message", "code"}` or text.

The 409 case is made deterministic by a server without workers: a destroy it
queues stays queued, so a change asked after it always meets it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from support.issuer import token
from support.server import Server
from support.server import boxes as server_boxes

from dodas import __version__

IM = "/im/infrastructures"
YAML = {"Content-Type": "text/yaml"}
#: a secret a client might put in a cloud line: it must appear nowhere
SECRET = "s3cr3t-" + uuid.uuid4().hex


def boxes(**kw: Any) -> str:
    """The server tests' boxes, one CPU each, with an output sensitive by its name."""
    return server_boxes(cpus=1, secret_output=True, **kw)


def create(server: Server, template: str, **params: Any) -> str:
    """POST a template as IM's clients do; the new infrastructure's id."""
    r = server.call("POST", IM, content=template, headers=YAML, params=params)
    assert r.status_code == 200, (r.text, server.tail())
    return r.headers["InfID"]


def uris(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/uri-list"), r.headers
    return [line for line in r.text.splitlines() if line]


def im_error(r: httpx.Response, status: int) -> str:
    """An IM error answered as JSON (the caller accepted it): its message."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"message", "code"} and body["code"] == status, body
    return body["message"]


# -- 1. creating and reading, in IM's formats ---------------------------------------------------
def test_create_and_read_an_infrastructure_in_ims_formats(server):
    template = boxes(n=2)
    r = server.call("POST", IM, content=template, headers=YAML)  # no async: answers once it is made
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/uri-list"), r.text
    inf = r.headers["InfID"]
    assert uuid.UUID(inf).version == 4
    uri = f"{server.url}{IM}/{inf}"
    assert r.text.strip() == uri
    view = server.status(inf)
    assert view["status"] == "CREATE_COMPLETE" and not view["work"], view
    assert len(server.records(view["id"])) == 2

    # the list, as uri-list and as JSON, with Bearer as well as the IM line
    assert uris(server.call("GET", IM)) == [uri]
    plain = server.call("GET", IM, accept="text/plain")
    assert plain.headers["content-type"].startswith("text/plain") and plain.text == uri
    bearer = f"Bearer {token(server.issuer, 'alice')}"
    listed = server.call("GET", IM, auth=bearer, accept="application/json")
    assert listed.status_code == 200 and listed.json() == {"uri-list": [{"uri": uri}]}
    json_form = json.dumps([{"type": "InfrastructureManager", "token": token(server.issuer, "alice")}])
    assert uris(server.call("GET", IM, auth=json_form)) == [uri]

    state = server.call("GET", f"{IM}/{inf}/state")
    assert state.status_code == 200 and state.json() == {
        "state": {"state": "configured", "vm_states": {"0": "configured", "1": "configured"}}}
    assert uris(server.call("GET", f"{IM}/{inf}")) == [f"{uri}/vms/0", f"{uri}/vms/1"]
    assert server.call("GET", f"{IM}/{inf}", accept="application/json").json() == {
        "uri-list": [{"uri": f"{uri}/vms/0"}, {"uri": f"{uri}/vms/1"}]}
    vm = server.call("GET", f"{IM}/{inf}/vms/1", accept="application/json").json()
    machines = [i for i in view["instances"] if i["kind"] == "compute"]
    assert vm == {"id": "1", "node": "box", "instance": "box[1]", "state": "configured",
                  "address": machines[1]["address"]}

    outs = server.call("GET", f"{IM}/{inf}/outputs")
    assert outs.status_code == 200 and outs.json() == {
        "outputs": {"address": [m["address"] for m in machines], "admin_token": [m["address"] for m in machines]}}
    log = server.call("GET", f"{IM}/{inf}/contmsg")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert "box[0]: created" in log.text and "box[1]: created" in log.text, log.text
    header_only = server.call("GET", f"{IM}/{inf}/contmsg", params={"headeronly": "1"}).text
    assert "box[" not in header_only and "-: complete" in header_only, header_only
    assert server.call("GET", f"{IM}/{inf}/contmsg", accept="application/json").json() == {"contmsg": log.text}
    tosca = server.call("GET", f"{IM}/{inf}/tosca")
    assert tosca.status_code == 200 and tosca.text == template
    assert server.call("GET", f"{IM}/{inf}/tosca", accept="application/json").json() == {"tosca": template}
    radl = server.call("GET", f"{IM}/{inf}/radl")
    assert radl.status_code == 200 and f"name = '{inf}'" in radl.text and "deploy box 2" in radl.text, radl.text
    assert "system box (" in server.call("GET", f"{IM}/{inf}/vms/1").text
    for method, path, said in (("PUT", f"{IM}/{inf}/stop", "no power operations"),
                               ("PUT", f"{IM}/{inf}/vms/0/reboot", "no power operations")):
        assert said in im_error(server.call(method, path, accept="application/json"), 400)
    assert len(server.records(view["id"])) == 2
    version = server.call("GET", "/im/version", None)
    assert version.status_code == 200 and version.text == __version__
    assert version.headers["content-type"].startswith("text/plain")

    # async=1: answered at once (JSON, as asked), made by a worker
    r = server.call("POST", IM, content=boxes(), headers=YAML, params={"async": "1"}, accept="application/json")
    assert r.status_code == 200, r.text
    second = r.headers["InfID"]
    assert r.json() == {"uri": f"{server.url}{IM}/{second}"}
    assert server.call("GET", f"{IM}/{second}/state").json()["state"]["state"] in ("pending", "running",
                                                                                   "configured")
    done = server.settled(second)
    assert done["status"] == "CREATE_COMPLETE" and len(server.records(done["id"])) == 1
    assert server.call("GET", f"{IM}/{second}/state").json() == {
        "state": {"state": "configured", "vm_states": {"0": "configured"}}}

    # a deployment made through the v1 API is listed too, by its name
    made = server.v1("alice", "POST", "/deployments", json={"name": "named", "template": boxes()})
    assert made.status_code == 202, made.text
    server.settled("named")
    assert sorted(uris(server.call("GET", IM))) == sorted([uri, f"{server.url}{IM}/{second}",
                                                           f"{server.url}{IM}/named"])


# -- 2. who may call, and IM's credential lines ----------------------------------------------------
def test_authorization_header_forms_and_refusals(server, serve):
    inf = create(server, boxes())
    for auth in (None, "Bearer not-a-token", "type = InfrastructureManager; token = not-a-token",
                 "Basic YWxpY2U6YWxpY2UtcHc=", "type = InfrastructureManager; username = alice; password = x",
                 f"id = ost; type = OpenStack; password = {SECRET}"):
        r = server.call("GET", IM, None, auth=auth, accept="application/json")
        message = im_error(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        if auth and auth.startswith(("Basic", "type = InfrastructureManager; username")):
            assert "this server takes OIDC access tokens" in message, message
    assert server.call("GET", IM, None).status_code == 401  # text/plain by default
    assert server.call("GET", IM, None).headers["content-type"].startswith("text/plain")

    # a cloud line, beside a good IM line, in both orders and forms: refused, named by id and type only
    im = server.im_line("alice")
    cloud = f"id = ost; type = OpenStack; host = https://cloud.example:5000; username = u; password = {SECRET}"
    for auth in (f"{cloud}\\n{im}", f"{im}\\n{cloud}",
                 json.dumps([{"type": "InfrastructureManager", "token": token(server.issuer, "alice")},
                             {"id": "ost", "type": "OpenStack", "password": SECRET}])):
        for method, path, body in (("GET", IM, None), ("POST", IM, boxes()), ("DELETE", f"{IM}/{inf}", None)):
            r = server.call(method, path, auth=auth, accept="application/json", content=body,
                            headers=YAML if body else {})
            message = im_error(r, 403)
            assert '"ost" (type OpenStack)' in message and "operator's providers" in message, message
            assert SECRET not in r.text and SECRET not in str(r.headers)
    # a value the IM client expands on the user's machine
    r = server.call("GET", IM, auth=f"type = InfrastructureManager; token = command(oidc-token {SECRET})",
                    accept="application/json")
    assert "file(...) or command(...)" in im_error(r, 400) and SECRET not in r.text
    r = server.call("GET", IM, auth=f"id = ost; type = OpenStack; password = 'a;{SECRET}\\\\nb'\\n{im}")
    assert r.status_code == 403 and SECRET not in r.text
    assert server.status(inf)["status"] == "CREATE_COMPLETE"  # the refused DELETE changed nothing
    assert [d["name"] for d in server.v1("alice", "GET", "/deployments").json()["items"]] == [inf]

    # an operator who ignores cloud lines: they are dropped, the call goes on
    lenient = serve(im_cloud_credentials="ignore")
    r = lenient.call("POST", IM, auth=f"{cloud}\\n{lenient.im_line('alice')}", content=boxes(), headers=YAML)
    assert r.status_code == 200, r.text
    assert len(lenient.records(lenient.status(r.headers["InfID"])["id"])) == 1
    unread = f"id = x; type = EC2; password = file(/home/me/{SECRET})\\n{lenient.im_line('alice')}"
    assert uris(lenient.call("GET", IM, auth=unread)) == [f"{lenient.url}{IM}/{r.headers['InfID']}"]
    for s in (server, lenient):
        s.stop()
        assert SECRET not in s.output()
        assert not any(SECRET.encode() in p.read_bytes() for p in s.home.rglob("*") if p.is_file())


def test_other_users_get_404_and_readers_may_not_operate(server):
    inf = create(server, boxes())
    records = server.records(server.status(inf)["id"])
    assert len(records) == 1
    for method, path, body in (("GET", f"{IM}/{inf}", None), ("GET", f"{IM}/{inf}/state", None),
                               ("GET", f"{IM}/{inf}/outputs", None), ("GET", f"{IM}/{inf}/contmsg", None),
                               ("GET", f"{IM}/{inf}/tosca", None), ("GET", f"{IM}/{inf}/vms/0", None),
                               ("DELETE", f"{IM}/{inf}", None), ("POST", f"{IM}/{inf}", boxes(count=3)),
                               ("PUT", f"{IM}/{inf}/reconfigure", None)):
        r = server.call(method, path, "bob", accept="application/json", content=body, headers=YAML if body else {})
        assert im_error(r, 404) == f'no deployment named "{inf}"', (method, path)
    assert server.call("GET", f"{IM}/{uuid.uuid4()}/state", accept="application/json").status_code == 404
    assert uris(server.call("GET", IM, "bob")) == []
    assert server.records(server.status(inf)["id"]) == records  # nothing bob did changed anything

    # frank reads /atlas's deployments, may not change them, and sees no sensitive output
    made = server.v1("alice", "POST", "/deployments", json={"name": "atlas-box", "template": boxes(),
                                                            "group": "/atlas"})
    assert made.status_code == 202, made.text
    view = server.settled("atlas-box")
    assert uris(server.call("GET", IM, "frank")) == [f"{server.url}{IM}/atlas-box"]
    outs = server.call("GET", f"{IM}/atlas-box/outputs", "frank").json()["outputs"]
    assert outs["address"] == view["instances"][0]["address"] and outs["admin_token"] == "********"
    assert server.call("GET", f"{IM}/atlas-box/outputs").json()["outputs"]["admin_token"] == outs["address"]
    for method, path, body in (("DELETE", f"{IM}/atlas-box", None), ("POST", f"{IM}/atlas-box", boxes(count=2)),
                               ("PUT", f"{IM}/atlas-box/reconfigure", None)):
        r = server.call(method, path, "frank", accept="application/json", content=body,
                        headers=YAML if body else {})
        assert "not change it" in im_error(r, 403), (method, path)
    assert server.settled("atlas-box")["status"] == "CREATE_COMPLETE"
    assert len(server.records(view["id"])) == 1


# -- 3. what is not a template this server takes ---------------------------------------------------
def test_bodies_that_are_not_tosca_and_bad_templates(server):
    radl = "network public (outbound = 'yes')\nsystem front (cpu.count>=1)\ndeploy front 1\n"
    for kind, said in (("text/plain", "the body is RADL (text/plain)"),
                       ("application/json", "the body is RADL-JSON (application/json)"),
                       ("application/xml", "application/xml is not supported")):
        r = server.call("POST", IM, content=radl, headers={"Content-Type": kind}, accept="application/json")
        assert said in im_error(r, 415), r.text
    r = server.call("POST", IM, content=radl, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.text.startswith("the body is RADL")  # text when JSON is not asked
    bad = boxes().replace("num_cpus: 1", "num_cpus: many")
    message = im_error(server.call("POST", IM, content=bad, headers=YAML, accept="application/json"), 400)
    assert message.startswith("template.yaml:10:") and '"many" is not an integer' in message, message
    message = im_error(server.call("POST", IM, content="topology_template: [\n", headers=YAML,
                                   accept="application/json"), 400)
    assert message.startswith("template.yaml:"), message
    app = ("    app:\n      type: tosca.nodes.SoftwareComponent\n      requirements: [{host: box}]\n"
           "      interfaces: {Standard: {create: /etc/passwd}}\n")
    evil = boxes().replace("  outputs:\n", app + "  outputs:\n")
    message = im_error(server.call("POST", IM, content=evil, headers=YAML, accept="application/json"), 400)
    assert 'playbook "/etc/passwd" is outside' in message, message
    assert uris(server.call("GET", IM)) == []
    assert not (server.home / "data" / "simulated" / "sim").exists() or not any(
        (server.home / "data" / "simulated" / "sim").rglob("*.json"))


# -- 4. changing: scalable.count, reconfigure, destroy ---------------------------------------------
def test_scale_by_count_reconfigure_and_destroy(server):
    inf = create(server, boxes(n=1))
    dep_id = server.status(inf)["id"]
    uri = f"{server.url}{IM}/{inf}"

    # CLUES's way: the template again, with the count it wants (no async: answered when done,
    # with the VMs added)
    r = server.call("POST", f"{IM}/{inf}", content=boxes(count=3), headers=YAML)
    assert uris(r) == [f"{uri}/vms/{n}" for n in (1, 2)]
    view = server.status(inf)
    assert [i["id"] for i in view["instances"]] == ["box[0]", "box[1]", "box[2]"]
    assert len(server.records(dep_id)) == 3
    assert server.call("GET", f"{IM}/{inf}/state").json()["state"]["vm_states"] == {
        "0": "configured", "1": "configured", "2": "configured"}
    # the template as it was created, sent back: its count reads input n, which is the
    # deployment's 3 now (not the sent template's default, 1): nothing is removed
    r = server.call("POST", f"{IM}/{inf}", content=boxes(n=1), headers=YAML)
    assert uris(r) == []
    assert len(server.records(dep_id)) == 3

    # removal_list: exactly the VMs named go; the others keep their instances and machines
    wrong = boxes(count=2, extra=", removal_list: ['7']")
    message = im_error(server.call("POST", f"{IM}/{inf}", content=wrong, headers=YAML, accept="application/json"),
                       400)
    assert "removal_list names 7, which is not one of its VMs (0, 1, 2)" in message, message
    addresses = {i["id"]: i["address"] for i in server.status(inf)["instances"]}
    r = server.call("POST", f"{IM}/{inf}", content=boxes(count=2, extra=", removal_list: ['0']"),
                    headers=YAML, accept="application/json")
    assert r.status_code == 200 and r.json() == {"uri-list": []}
    kept = {i["id"]: i["address"] for i in server.status(inf)["instances"]}
    assert kept == {k: addresses[k] for k in ("box[1]", "box[2]")}, kept
    assert len(server.records(dep_id)) == 2
    # removeresource: VM 1 is box[2] now (VMs are numbered by position), and only it goes
    r = server.call("DELETE", f"{IM}/{inf}/vms/1")
    assert r.status_code == 200, r.text
    assert [i["id"] for i in server.status(inf)["instances"]] == ["box[1]"]
    assert len(server.records(dep_id)) == 1
    assert "no VM 5" in im_error(server.call("DELETE", f"{IM}/{inf}/vms/5", accept="application/json"), 404)
    # a count written in the template of the deployment cannot change: a located refusal
    fixed = create(server, boxes(count=1))
    message = im_error(server.call("POST", f"{IM}/{fixed}", content=boxes(count=2), headers=YAML,
                                   accept="application/json"), 400)
    assert "fixed count" in message, message

    # reconfigure: a machine the provider lost is made again
    server.records(dep_id)[0].unlink()
    r = server.call("PUT", f"{IM}/{inf}/reconfigure")
    assert r.status_code == 200, r.text
    assert server.settled(inf)["status"] == "UPDATE_COMPLETE"
    assert len(server.records(dep_id)) == 1
    log = server.call("GET", f"{IM}/{inf}/contmsg").text
    assert "box[1] WARNING: the machine is gone; creating it again" in log, log
    # the same template, unchanged, sent again: IM reconfigures
    server.records(dep_id)[0].unlink()
    r = server.call("POST", f"{IM}/{inf}", content=boxes(count=1), headers=YAML)
    assert uris(r) == []
    assert len(server.records(dep_id)) == 1
    assert server.call("GET", f"{IM}/{inf}/contmsg").text.count("the machine is gone") == 2

    # destroy: answered once it is done; then the infrastructure is gone (404), as in IM
    r = server.call("DELETE", f"{IM}/{inf}")
    assert r.status_code == 200 and r.text == "", r.text
    assert server.status(inf)["status"] == "DELETE_COMPLETE"
    assert server.records(dep_id) == []
    for path in (f"{IM}/{inf}", f"{IM}/{inf}/state", f"{IM}/{inf}/outputs"):
        assert "destroyed" in im_error(server.call("GET", path, accept="application/json"), 404)
    assert im_error(server.call("DELETE", f"{IM}/{inf}", accept="application/json"), 404)
    assert uris(server.call("GET", IM)) == [f"{server.url}{IM}/{fixed}"]


# -- 5. a change while a destroy is pending: 409 -----------------------------------------------------
def test_changes_while_being_destroyed_are_409(serve, tmp_path):
    home = tmp_path / "home"
    first = serve(home=home)
    inf = create(first, boxes(n=2))
    dep_id = first.status(inf)["id"]
    first.stop()
    idle = serve(home=home, workers=0)  # queues work, runs none: the destroy stays pending
    r = idle.call("DELETE", f"{IM}/{inf}", params={"async": "1"})
    assert r.status_code == 200, r.text
    assert idle.call("GET", f"{IM}/{inf}/state").json()["state"] == {
        "state": "deleting", "vm_states": {"0": "deleting", "1": "deleting"}}
    for method, path, body in (("POST", f"{IM}/{inf}", boxes(count=3)), ("PUT", f"{IM}/{inf}/reconfigure", None),
                               ("POST", f"{IM}/{inf}", boxes(count=2))):
        r = idle.call(method, path, accept="application/json", content=body, headers=YAML if body else {})
        assert im_error(r, 409) == f'deployment "{inf}" is being destroyed', (method, path)
    assert len(idle.records(dep_id)) == 2  # nothing ran
    idle.stop()
    working = serve(home=home)
    assert working.settled(inf)["status"] == "DELETE_COMPLETE"
    assert working.records(dep_id) == []
    assert working.call("GET", f"{IM}/{inf}/state").status_code == 404


def test_a_failed_creation_is_failed_in_ims_words(serve):
    broken = serve(sim={"failure_rate": 1.0, "delete_failure_rate": 0.0, "transient": False, "seed": 1})
    r = broken.call("POST", IM, content=boxes(n=2), headers=YAML)  # waits, then answers: the state says the rest
    assert r.status_code == 200, r.text
    inf = r.headers["InfID"]
    view = broken.status(inf)
    assert view["status"] == "CREATE_FAILED" and broken.records(view["id"]) == []
    state = broken.call("GET", f"{IM}/{inf}/state").json()["state"]
    assert state["state"] == "failed", state
    assert "simulated failure" in broken.call("GET", f"{IM}/{inf}/contmsg").text


def test_the_state_vocabulary():
    """The mapping itself, for the states a simulated deployment never reaches
    (configuration failing on running machines needs real machines)."""
    from dodas.server.im import states

    def view(status: str, *instances: tuple[str, str], work: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"status": status, "work": [{"operation": w} for w in work],
                "instances": [{"id": f"{n}[0]", "node": n, "kind": k, "state": st}
                              for n, (k, st) in enumerate(instances)]}
    box, app = ("compute", "created"), ("software", "error")
    assert states.deployment_state(view("QUEUED")) == "pending"
    assert states.deployment_state(view("CREATE_IN_PROGRESS", ("compute", "creating"), box)) == "pending"
    assert states.deployment_state(view("CREATE_IN_PROGRESS", box, ("software", "configuring"))) == "running"
    assert states.deployment_state(view("UPDATE_COMPLETE", box)) == "configured"
    assert states.deployment_state(view("UPDATE_COMPLETE", box, work=("scale",))) == "pending"
    assert states.deployment_state(view("CREATE_FAILED", box, app)) == "unconfigured"
    assert states.deployment_state(view("CREATE_FAILED", ("compute", "error"), app)) == "failed"
    assert states.deployment_state(view("CREATE_COMPLETE", box, work=("destroy",))) == "deleting"
    assert states.deployment_state(view("DELETE_FAILED", box)) == "failed"
    assert states.deployment_state(view("DELETE_COMPLETE")) == "deleted"
    assert states.machine_state({"state": "missing"}, "configured") == "off"
    assert states.machine_state({"state": "created"}, "unconfigured") == "unconfigured"
    assert states.machine_state({"state": "started"}, "running") == "running"
    # the face's copy of dodas's vocabulary (it may not import engine/) is the engine's
    from dodas.engine.states import COMPUTE_READY, DeploymentStatus, InstanceState
    assert states.COMPUTE_READY == COMPUTE_READY
    assert set(states.INSTANCE) | states.COMPUTE_READY == {s.value for s in InstanceState}
    assert (states._COMPLETE | states._IN_PROGRESS | states._FAILED
            | {states.DELETE_IN_PROGRESS, states.DELETE_COMPLETE}) == {s.value for s in DeploymentStatus}


def test_a_filter_that_backtracks_forever_is_stopped_with_a_clear_answer():
    """IM's `filter` is the user's regular expression: one that backtracks
    catastrophically is cut short (400, IM's shape), never left to hold a worker."""
    from dodas.server.im import radl

    slow = radl.compiled_filter(r"(a|aa)+$")
    with pytest.raises(ValueError, match="took more than"):
        slow.search("a" * 40 + "!")
    assert radl.compiled_filter("demo").search("description desc (\nname = 'demo'\n)")
    with pytest.raises(ValueError, match="not a regular expression"):
        radl.compiled_filter("(")
