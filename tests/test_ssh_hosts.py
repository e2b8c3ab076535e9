"""The SSH provider against real OpenSSH servers on loopback addresses: hosts are
claimed, configured over SSH by Ansible, cleaned and released on destroy."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from livecluster import ROOT, Dodas, count_services, kill_leftovers, need_java, processes_of

SSHD = "/usr/sbin/sshd"


def _port_free(addr: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((addr, port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory):
    """Three sshd servers on 127.0.1.1-3, one client key that logs in as this user."""
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip("OpenSSH server not installed (make.py test installs it)")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client")], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    procs, hosts = [], []
    for n in (1, 2, 3):
        addr = f"127.0.1.{n}"
        port = next(p for p in range(2222, 2300) if _port_free(addr, p))
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / f"host{n}")], check=True)
        cfg = d / f"sshd{n}.conf"
        cfg.write_text(textwrap.dedent(f"""\
            ListenAddress {addr}:{port}
            HostKey {d / f'host{n}'}
            AuthorizedKeysFile {d / 'authorized_keys'}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PidFile {d / f'sshd{n}.pid'}
            Subsystem sftp internal-sftp
            """))
        procs.append(subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        hosts.append({"address": addr, "port": port})
    for h in hosts:
        deadline = time.monotonic() + 20
        while _port_free(h["address"], h["port"]) and time.monotonic() < deadline:
            time.sleep(0.1)
    yield {"hosts": hosts, "key": str(d / "client"), "user": os.environ.get("USER") or "root"}
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def configure(home: Path, pool: dict, spark: bool = False) -> None:
    import sys

    import yaml

    from dodas.providers.local import find_java
    extra = {}
    if spark:  # these hosts are this machine: use its Spark, Java and Python
        extra = {"python": sys.executable, "spark_home": str(Path(importlib.util.find_spec("pyspark").origin).parent),
                 "java_home": find_java().get("home")}
    hosts = [{"address": h["address"], "port": h["port"], "user": pool["user"], "key": pool["key"],
              "num_cpus": 1, "mem_mib": 2048, **extra} for h in pool["hosts"]]
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump({"providers": [{"name": "lab", "type": "ssh", "rank": 1, "hosts": hosts}]}))


def web_template(tmp_path: Path) -> str:
    pb = tmp_path / "web.yml"
    pb.write_text(textwrap.dedent("""\
        - hosts: "{{ dodas_target }}"
          gather_facts: false
          tasks:
            - name: Page
              dodas_files:
                files: [{path: "{{ dodas_instance_dir }}/www/index.html", content: "hello from {{ dodas_instance }}"}]
            - name: Web server
              dodas_service:
                name: web
                instance_dir: "{{ dodas_instance_dir }}"
                command: [python3, -m, http.server, --bind, "{{ dodas_address }}", "{{ web_port }}",
                          --directory, "{{ dodas_instance_dir }}/www"]
                wait_port: "{{ web_port }}"
                wait_host: "{{ dodas_address }}"
              register: web
            - name: dodas_report
              ansible.builtin.set_fact:
                dodas_report: {services: {web: {pid: "{{ web.pid }}", pgid: "{{ web.pgid }}"}}}
        """))
    t = tmp_path / "web.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.Web:
            derived_from: tosca.nodes.SoftwareComponent
            properties:
              port: {{type: integer, default: 8099}}
            interfaces:
              Standard:
                start: {{implementation: {pb}, inputs: {{web_port: {{get_property: [SELF, port]}}}}}}
                stop: {{implementation: playbooks/service_stop.yml}}
                delete: {{implementation: playbooks/service_delete.yml}}
        topology_template:
          inputs:
            n: {{type: integer, default: 2}}
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {{get_input: n}}}}}}
            web:
              type: my.nodes.Web
              requirements: [{{host: box}}]
          outputs:
            urls: {{value: {{get_attribute: [box, private_address]}}}}
        """))
    return str(t)


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def test_up_over_ssh_and_destroy(ssh_hosts, tmp_path, d):
    configure(d.home, ssh_hosts)
    assert d.run("providers", "--check").returncode == 0
    t = web_template(tmp_path)
    d.run("up", t, "--name", "web", "--max-providers", "1")  # no failing over to local here
    st = d.json("status", "web")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "lab"
    addrs = sorted(d.outputs("web")["urls"])
    assert addrs == ["127.0.1.1", "127.0.1.2"]
    for a in addrs:
        body = urllib.request.urlopen(f"http://{a}:8099/", timeout=10).read().decode()
        assert body.startswith("hello from web[")
    services = [s for i in st["instances"] for s in (i.get("services") or {}).values()]
    assert len(services) == 2 and all(s["alive"] is True for s in services), services
    # no free host is left for a third instance: refused before anything is made
    r = d.run("up", t, "--name", "web", "-i", "n=4", check=False)
    assert r.returncode == 1 and "needs 4 hosts and 1 of 3 are free" in r.stderr
    d.run("destroy", "web", "--yes")
    for a in addrs:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{a}:8099/", timeout=3)
    claims = json.loads((d.home / "data" / "ssh" / "lab.json").read_text())
    assert claims == {}
    assert not list(Path("/var/tmp/dodas").glob(f"{st['id']}/*"))


def test_spark_and_jupyter_over_ssh(ssh_hosts, tmp_path):
    need_java()
    d = Dodas(tmp_path / "home")
    configure(d.home, ssh_hosts, spark=True)
    try:
        d.run("up", str(ROOT / "templates" / "spark-jupyter.yaml"), "--name", "sparkssh")
        outs = d.outputs("sparkssh")
        assert outs["spark_master_url"].startswith("spark://127.0.1.")
        with urllib.request.urlopen(outs["spark_ui_url"] + "/json/", timeout=10) as resp:
            workers = [w for w in json.load(resp)["workers"] if w["state"] == "ALIVE"]
        assert sorted(w["host"] for w in workers) == sorted(
            a for a in ("127.0.1.1", "127.0.1.2", "127.0.1.3") if a not in outs["spark_master_url"])
        d.run("destroy", "sparkssh", "--yes")
        assert count_services(Path("/var/tmp/dodas")) == {"master": 0, "worker": 0, "jupyter": 0}
    finally:
        kill_leftovers(Path("/var/tmp/dodas"))
        assert processes_of(d.home) == {}
