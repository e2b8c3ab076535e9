"""Private machines reached through a bastion, for real: OpenSSH servers in network
namespaces (tests/support/netns.py), where this machine reaches only the public host and the
workers sit on a private network behind it, as on a cloud where only the front end
has a floating IP. dodas must configure the Spark + Jupyter template there, with
the host keys of both hops checked against its own known_hosts."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from support.livecluster import Dodas, count_services, kill_leftovers, need_java, processes_of, run_processes
from support.netns import make_lab, need_netns
from support.paths import ROOT
from support.sshd import Sshd, client_key, need_openssh

WORKDIR = Path("/var/tmp/dodas")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One public host (two addresses) and two private hosts behind it, each a real sshd."""
    need_openssh()
    need_netns()
    d = tmp_path_factory.mktemp("lab")
    lab = make_lab(2)
    servers: dict[str, Sshd] = {}
    try:
        servers["public"] = Sshd(d, "pub", [(lab.public_address, 22), (lab.gateway_private, 22)], lab.public_ns)
        for i, (ns, addr) in enumerate(lab.private):
            servers[addr] = Sshd(d, f"p{i}", [(addr, 22)], ns)
        yield {"lab": lab, "key": str(client_key(d)), "servers": servers}
    finally:
        for s in servers.values():
            s.stop()
        lab.remove()


def pool(home: Path, env: dict, spark: bool = False) -> None:
    from dodas.providers.local import find_java

    lab = env["lab"]
    common = {"user": "root", "key": env["key"], "num_cpus": 1, "mem_mib": 2048}
    if spark:  # the namespaces share this machine's files: use its Spark, Java and Python
        common.update(python=sys.executable, java_home=find_java().get("home"),
                      spark_home=str(Path(importlib.util.find_spec("pyspark").origin).parent))
    hosts = [{"address": lab.public_address, "private_address": lab.gateway_private, **common}]
    hosts += [{"private_address": addr, **common} for _, addr in lab.private]
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump({"providers": [{"name": "lab", "type": "ssh", "rank": 1, "hosts": hosts}]}))


def known_key(home: Path, address: str) -> str | None:
    """The host key dodas's known_hosts holds for an address (None if none)."""
    r = subprocess.run(["ssh-keygen", "-F", address, "-f", str(home / "data" / "ssh" / "known_hosts")],
                       capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith("#")]
    return lines[0].split()[2] if lines else None


def http_from(lab, ns: str, url: str) -> str:
    """GET a URL from inside a namespace (the private network is not reachable from here)."""
    r = lab.run(ns, sys.executable, "-c", f"import urllib.request; print(urllib.request.urlopen({url!r}, "
                                          "timeout=10).read().decode())")
    assert r.returncode == 0, r.stderr
    return r.stdout


def web_template(tmp_path: Path) -> str:
    """A public front and private boxes, each serving a page on its private address."""
    pb = tmp_path / "web.yml"
    pb.write_text(textwrap.dedent("""\
        - hosts: "{{ dodas_target }}"
          gather_facts: false
          tasks:
            - name: Page
              dodas_files:
                files:
                  - {path: "{{ dodas_instance_dir }}/www/index.html", content: "{{ greeting }} {{ dodas_instance }}"}
            - name: Web server
              dodas_service:
                name: web
                instance_dir: "{{ dodas_instance_dir }}"
                command: [python3, -m, http.server, --bind, "{{ dodas_address }}", "8099",
                          --directory, "{{ dodas_instance_dir }}/www"]
                wait_port: 8099
                wait_host: "{{ dodas_address }}"
              register: web
            - name: dodas_report
              ansible.builtin.set_fact:
                dodas_report:
                  services: {web: {pid: "{{ web.pid }}", pgid: "{{ web.pgid }}", start: "{{ web.start }}"}}
        """))
    t = tmp_path / "web.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.Web:
            derived_from: tosca.nodes.SoftwareComponent
            properties:
              greeting: {{type: string, default: hello}}
            interfaces:
              Standard:
                start: {{implementation: {pb}, inputs: {{greeting: {{get_property: [SELF, greeting]}}}}}}
                stop: {{implementation: playbooks/service_stop.yml}}
                delete: {{implementation: playbooks/service_delete.yml}}
        topology_template:
          inputs:
            greeting: {{type: string, default: hello}}
          node_templates:
            front:
              type: tosca.nodes.indigo.Compute
              capabilities:
                endpoint: {{properties: {{network_name: PUBLIC}}}}
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                endpoint: {{properties: {{network_name: PRIVATE}}}}
                scalable: {{properties: {{count: 2}}}}
            web:
              type: my.nodes.Web
              properties: {{greeting: {{get_input: greeting}}}}
              requirements: [{{host: box}}]
          outputs:
            boxes: {{value: {{get_attribute: [box, private_address]}}}}
        """))
    return str(t)


def test_private_hosts_are_reached_only_through_the_public_one(lab, tmp_path):
    """The set-up is what it claims (no way to a private host from here), and the
    provider logs in to every host of the pool, the private ones through the public."""
    for _, addr in lab["lab"].private:
        with pytest.raises(OSError):
            socket.create_connection((addr, 22), timeout=3).close()
    d = Dodas(tmp_path / "home")
    pool(d.home, lab)
    r = d.run("providers", "--check")
    assert "3 host(s) answer (2 through a bastion)" in r.stdout, r.stdout + r.stderr


def test_web_boxes_behind_the_bastion_and_host_keys_on_both_hops(lab, tmp_path):
    d = Dodas(tmp_path / "home")
    pool(d.home, lab)
    t = web_template(tmp_path)
    try:
        d.run("up", t, "--name", "web", "--max-providers", "1")
        st = d.json("status", "web")
        assert st["status"] == "CREATE_COMPLETE", st
        # its SSH connections (and their ProxyJump helpers) ended with the run
        assert run_processes(st["id"]) == {}
        boxes = sorted(d.outputs("web")["boxes"])
        assert boxes == sorted(a for _, a in lab["lab"].private)
        for a in boxes:
            assert http_from(lab["lab"], lab["lab"].public_ns, f"http://{a}:8099/").startswith("hello web[")
        # every hop's key was learnt into dodas's own file, and is the server's real key
        servers = lab["servers"]
        assert known_key(d.home, lab["lab"].public_address) == servers["public"].host_public_key
        for a in boxes:
            assert known_key(d.home, a) == servers[a].host_public_key
        # the pool is full: an unchanged `up` does nothing, and says so
        d.run("up", t, "--name", "web")
        last = json.loads(d.run("logs", "web", "--json").stdout.splitlines()[-1])
        assert last["message"].startswith("nothing to do"), last
        # the bastion's key no longer matches what dodas learnt: the first hop is refused
        kh = d.home / "data" / "ssh" / "known_hosts"
        subprocess.run(["ssh-keygen", "-R", lab["lab"].public_address, "-f", str(kh)], check=True,
                       capture_output=True)
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        with kh.open("a") as f:
            f.write(f"{lab['lab'].public_address} {(tmp_path / 'other.pub').read_text().split()[0]} "
                    f"{(tmp_path / 'other.pub').read_text().split()[1]}\n")
        r = d.run("up", t, "--name", "web", "-i", "greeting=hi", check=False)
        assert r.returncode != 0
        assert "host key" in r.stderr.lower() and lab["lab"].public_address in r.stderr, r.stderr
        for a in boxes:  # nothing was reconfigured through an unverified bastion
            assert http_from(lab["lab"], lab["lab"].public_ns, f"http://{a}:8099/").startswith("hello web[")
        # with the right key back, the change goes through
        subprocess.run(["ssh-keygen", "-R", lab["lab"].public_address, "-f", str(kh)], check=True,
                       capture_output=True)
        d.run("up", t, "--name", "web", "-i", "greeting=hi")
        for a in boxes:
            assert http_from(lab["lab"], lab["lab"].public_ns, f"http://{a}:8099/").startswith("hi web[")
        d.run("destroy", "web", "--yes")
        assert processes_of(WORKDIR / st["id"]) == {} and run_processes(st["id"]) == {}
        assert json.loads((d.home / "data" / "ssh" / "lab.json").read_text()) == {}
    finally:  # this test's own deployments only: other tests may run on the same hosts meanwhile
        for dep in d.json("list", "--all"):
            kill_leftovers(WORKDIR / dep["id"])


def test_spark_and_jupyter_with_workers_behind_the_master(lab, tmp_path):
    need_java()
    d = Dodas(tmp_path / "home")
    pool(d.home, lab, spark=True)
    lab_ = lab["lab"]
    dep_id = None
    try:
        d.run("up", str(ROOT / "templates" / "spark-jupyter.yaml"), "--name", "behind", "--max-providers", "1")
        st = d.json("status", "behind")
        dep_id = st["id"]
        assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "lab"
        # the master and JupyterLab on the public host, the workers on the private ones
        by_node = {i["id"]: i for i in st["instances"]}
        assert by_node["master_host[0]"]["address"] == lab_.gateway_private
        assert {by_node[f"worker_hosts[{k}]"]["address"] for k in (0, 1)} == {a for _, a in lab_.private}
        status = json.loads(http_from(lab_, lab_.public_ns, f"http://{lab_.gateway_private}:8080/json/"))
        alive = sorted(w["host"] for w in status["workers"] if w["state"] == "ALIVE")
        assert alive == sorted(a for _, a in lab_.private), status["workers"]
        token = d.outputs("behind", secrets=True)["jupyter_token"]
        api = http_from(lab_, lab_.public_ns, f"http://{lab_.gateway_private}:8888/api/status?token={token}")
        assert "started" in json.loads(api)
        assert count_services(WORKDIR / dep_id) == {"master": 1, "worker": 2, "jupyter": 1}
        d.run("destroy", "behind", "--yes")
        assert processes_of(WORKDIR / dep_id) == {}, "destroy stops the services on every host, private ones too"
    finally:
        if dep_id:
            kill_leftovers(WORKDIR / dep_id)
