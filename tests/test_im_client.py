"""/im driven by IM's own client (the `IM-client` package from PyPI, module
`imclient`), against a real server on the simulated provider: every call the
client offers either works or is refused with IM's shape and a message that
says what is wrong with the request as sent.

The library's functions are called as `im_client` calls them; the calls the
command line adds on top (`-n NAME`, which lists with a `filter`; `ssh`/`sshvm`,
which parse a VM's RADL) go through the same IMClient methods the command does.
"""

from __future__ import annotations

import subprocess
import sys
from optparse import Values
from pathlib import Path
from typing import Any

import pytest
from imclient.imclient import CmdSsh, IMClient
from radl import radl_parse
from support.server import Server
from support.server import boxes as server_boxes

NAME = "demo-boxes"


def boxes(**kw: Any) -> str:
    """The server tests' boxes, one CPU each, named as IM names a TOSCA infrastructure."""
    return f"metadata: {{infra_name: {NAME}}}\n" + server_boxes(cpus=1, **kw)


def command(server: Server, *args: str, name: bool = False) -> IMClient:
    """An IMClient as `im_client [-n] OPERATION ARGS` builds it."""
    options = Values({"restapi": server.url + "/im", "xmlrpc": None, "verify": False, "quiet": True,
                      "name": name, "system_name": None, "force": False, "yes": True})
    return IMClient(options, server.im_line("alice"), list(args))


def test_ims_client_drives_every_call(server):
    client = IMClient.init_client(server.url + "/im", server.im_line("alice"))
    template = boxes(n=2)
    ok, inf = client.create(template, "yaml")  # not async: answered once made
    assert ok, inf
    view = server.status(inf)
    assert view["status"] == "CREATE_COMPLETE", view
    machines = [i for i in view["instances"] if i["kind"] == "compute"]
    other = server.v1("alice", "POST", "/deployments", json={"name": "other", "template": server_boxes(cpus=1)})
    assert other.status_code == 202, other.text
    server.settled("other")

    assert client.getversion()[0]
    ok, listed = client.list_infras()
    assert ok and sorted(listed) == sorted([inf, "other"]), listed
    # -n NAME: the client lists with a filter searched in each infrastructure's RADL
    assert command(server, NAME, name=True)._get_inf_id() == inf
    assert command(server, "other", name=True)._get_inf_id() == "other"
    with pytest.raises(Exception, match="Infrastructure Name not found"):  # the client's own refusal
        command(server, "no-such-name", name=True)._get_inf_id()
    assert command(server)._list_infras(show_name=True) == (True, {inf: NAME, "other": "other"})
    ok, message = client.list_infras("([")
    assert not ok and "the filter is not a regular expression" in message, message

    # getstate, getcontmsg, getoutputs, the RADL
    assert client.get_infra_property(inf, "state") == (True, {"state": "configured", "vm_states": {
        "0": "configured", "1": "configured"}})
    ok, log = client.get_infra_property(inf, "contmsg")
    assert ok and "box[0]: created" in log and "box[1]: created" in log, log
    ok, outs = client.get_infra_property(inf, "outputs")
    assert ok and outs == {"address": [m["address"] for m in machines]}, outs
    ok, text = client.get_infra_property(inf, "radl")
    assert ok and radl_parse.parse_radl(text).description.getValue("name") == NAME

    # getinfo (and -s NODE), getvminfo, getvmcontmsg
    ok, infos = client.getinfo(inf)
    assert ok
    for vm_id, vm_ok, text in infos:
        described = radl_parse.parse_radl(text)
        m = machines[int(vm_id)]
        assert vm_ok and described.systems[0].name == "box"
        assert described.systems[0].getValue("state") == "configured"
        assert described.systems[0].getValue("instance_name") == m["id"]
        assert m["address"] in (described.getPublicIP(), described.getPrivateIP())
    assert [text for _, _, text in client.getinfo(inf, system_name="box")[1]][0].startswith("network")
    assert [text for _, _, text in client.getinfo(inf, system_name="nothing")[1]] == ["", ""]
    assert [v for _, _, v in client.getinfo(inf, "state", system_name="box")[1]] == ["configured"] * 2
    assert client.getvminfo(inf, "1", "state") == (True, "configured")
    ok, message = client.getvminfo(inf, "1", "cpu.count")
    assert not ok and 'VM 1 has no property "cpu.count"' in message, message
    ok, message = client.getvminfo(inf, "7")
    assert not ok and "has no VM 7 (its VMs: 0 to 1)" in message, message
    ok, vm_log = command(server, inf, "1")._getvmcontmsg()
    assert ok and "box[1]: created" in vm_log and "box[0]" not in vm_log, vm_log

    # ssh / sshvm: the command the client would run, from the VM's RADL
    ok, (described, show_only, _) = command(server, inf, "1", "1")._ssh("sshvm")
    assert ok and show_only
    address = described.getPublicIP() or described.getPrivateIP()
    assert address == (machines[1].get("public_address") or machines[1]["address"])
    ssh = CmdSsh._connect_password(described)
    assert "ssh" in ssh and ssh[-1].endswith("@" + address), ssh
    ok, (described, _, _) = command(server, inf, "1")._ssh("ssh")
    assert ok and described.systems[0].getValue("vm_id") == "0"

    # addresource: the new VMs only; removeresource: exactly the VMs named
    assert client.addresource(inf, boxes(count=3), "yaml") == (True, ["2"])
    assert len(server.records(view["id"])) == 3
    _, message = client.removeresource(inf, [7])  # the client says True whatever the answer: read its text
    assert "has no VM 7" in message, message
    assert len(server.records(view["id"])) == 3
    assert client.removeresource(inf, [1]) == (True, "1")
    assert len(server.records(view["id"])) == 2
    assert [i["id"] for i in server.status(inf)["instances"]] == ["box[0]", "box[2]"]
    assert client.get_infra_property(inf, "state")[1]["vm_states"] == {"0": "configured", "1": "configured"}

    # reconfigure: without a body, with the same template, not with another
    assert client.reconfigure(inf, "") == (True, "")
    server.settled(inf)
    assert client.reconfigure(inf, template, "yaml") == (True, "")
    server.settled(inf)
    ok, message = client.reconfigure(inf, template.replace("1 GB", "2 GB"), "yaml")
    assert not ok and "differs from the infrastructure's" in message, message
    ok, message = client.reconfigure(inf, "system box ( cpu.count = 2 )")
    assert not ok and "the body has no Content-Type, so it is RADL" in message, message

    # what dodas does not offer: refused, saying so
    for ok, message in (client.alter(inf, "0", "system box ( cpu.count = 2 )"), client.start_infra(inf),
                        client.stop_infra(inf), client.start_vm(inf, "0"), client.stop_vm(inf, "0"),
                        client.reboot_vm(inf, "0")):
        assert not ok and "this server does not" in message, message
    ok, message = client.export_data(inf)
    assert not ok and "exporting an infrastructure (GET .../data) is not offered" in message, message
    ok, message = client.import_data("{}")
    assert not ok and "importing an infrastructure (PUT /infrastructures) is not offered" in message, message
    ok, message = client.change_auth(inf, [{"type": "InfrastructureManager", "username": "bob"}])
    assert not ok and "changing an infrastructure's owners" in message, message
    ok, message = client.get_cloud_images("ost")
    assert not ok and "is not a call of this server's IM API" in message, message
    assert len(server.records(view["id"])) == 2

    # destroy, by name as `im_client -n -y destroy NAME` does: only that one goes
    assert command(server, NAME, name=True)._destroy() == (True, "")
    assert server.status(inf)["status"] == "DELETE_COMPLETE"
    ok, message = client.get_infra_property(inf, "state")
    assert not ok and "was destroyed" in message
    assert server.status("other")["status"] == "CREATE_COMPLETE"
    assert client.list_infras() == (True, ["other"])


def test_unknown_routes_and_methods_answer_ims_shape(server):
    for method, path, status, said in (("GET", "/im/nothing", 404, "is not a call of this server's IM API"),
                                       ("GET", "/im", 404, "is not a call"),
                                       ("DELETE", "/im/version", 405, "DELETE is not a method of /im/version"),
                                       ("PATCH", "/im/infrastructures", 405, "(it takes GET, POST, PUT)")):
        r = server.call(method, path, accept="application/json")
        assert r.status_code == status, (method, path, r.text)
        body = r.json()
        assert set(body) == {"message", "code"} and body["code"] == status and said in body["message"], body
        text = server.call(method, path)
        assert text.status_code == status and text.headers["content-type"].startswith("text/plain")
    assert server.call("DELETE", "/im/version").headers["allow"] == "GET"


def test_a_body_too_large_is_refused_in_ims_shape(serve):
    small = serve(max_body_bytes=4096)
    r = small.call("POST", "/im/infrastructures", content=boxes() + "#" * 5000,
                   headers={"Content-Type": "text/yaml"}, accept="application/json")
    assert r.status_code == 413 and r.json() == {"message": "the request body is larger than 4096 bytes",
                                                 "code": 413}, r.text


def test_which_vms_may_be_removed():
    """removal.py's rule on two nodes, in IM's numbering (node, then index): any
    VM may be named, and names its instance."""
    from dodas.server.access import Refused
    from dodas.server.im import removal

    view = {"instances": [{"id": f"{node}[{i}]", "node": node, "index": i, "kind": "compute", "state": "created"}
                          for node, n in (("a", 3), ("b", 2)) for i in range(n)]}  # VMs 0-2: a, 3-4: b
    assert removal.chosen(view, [4, 2], "x") == ["a[2]", "b[1]"]
    assert removal.chosen(view, [0], "x") == ["a[0]"]
    with pytest.raises(Refused, match=r"has no VM 9 \(its VMs: 0 to 4\)"):
        removal.chosen(view, [9], "x")
    assert removal.changed(view, {"a": (2, ("0",)), "b": (2, ())}, "x") == ({}, ["a[0]"])
    assert removal.changed(view, {"a": (4, ()), "b": (2, ())}, "x") == ({"a": 4}, [])
    with pytest.raises(Refused, match=r"removal_list names 1 VMs but the count goes from 3 to 1"):
        removal.changed(view, {"a": (1, ("2",))}, "x")
    with pytest.raises(Refused, match=r"removal_list names 4, which is not one of its VMs \(0, 1, 2\)"):
        removal.changed(view, {"a": (2, ("4",))}, "x")


def test_the_im_client_command_selects_by_name(server, tmp_path):
    """`im_client -n ...` as a user runs it: a name no infrastructure has finds
    none (it used to show the first one's state), and `-n -y destroy NAME`
    destroys that one only."""
    auth = tmp_path / "auth.dat"
    auth.write_text(server.im_line("alice") + "\n")
    auth.chmod(0o600)

    def im_client(*args: str) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).parent / "im_client"
        return subprocess.run([str(exe), "-r", server.url + "/im", "-a", str(auth), *args],
                              capture_output=True, text=True, check=False)
    inf = IMClient.init_client(server.url + "/im", server.im_line("alice")).create(boxes(), "yaml")[1]
    made = server.v1("alice", "POST", "/deployments", json={"name": "other", "template": server_boxes(cpus=1)})
    assert made.status_code == 202, made.text
    server.settled("other")

    missing = im_client("-n", "getstate", "no-such-name")
    assert "Infrastructure Name not found" in missing.stdout + missing.stderr, missing
    assert "The infrastructure is in state" not in missing.stdout
    state = im_client("-n", "getstate", NAME)
    assert state.returncode == 0 and "The infrastructure is in state: configured" in state.stdout, state
    info = im_client("-n", "-s", "box", "getinfo", NAME)
    assert info.returncode == 0 and "system box (" in info.stdout, info
    destroyed = im_client("-n", "-y", "destroy", NAME)
    assert destroyed.returncode == 0 and "successfully destroyed" in destroyed.stdout, destroyed
    assert server.status(inf)["status"] == "DELETE_COMPLETE"
    assert server.status("other")["status"] == "CREATE_COMPLETE"
