"""The SSH provider against real OpenSSH servers on loopback addresses: hosts are
claimed, configured over SSH by Ansible, cleaned and released on destroy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import urllib.request
from pathlib import Path

import pytest
from support.livecluster import DODAS, processes_of, wait_while_running
from support.ssh_pool import WORKDIR, configure

#: the hang guard, above what a test here needs on a busy machine: deployments configured over SSH by Ansible
pytestmark = pytest.mark.timeout(1800)


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


def test_up_over_ssh_and_destroy(ssh_hosts, tmp_path, ssh_dodas):
    configure(ssh_dodas.home, ssh_hosts)
    assert ssh_dodas.run("providers", "--check").returncode == 0
    t = web_template(tmp_path)
    ssh_dodas.run("up", t, "--name", "web", "--max-providers", "1")  # no failing over to local here
    st = ssh_dodas.json("status", "web")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "lab"
    addrs = sorted(ssh_dodas.outputs("web")["urls"])
    assert addrs == ["127.0.1.1", "127.0.1.2"]
    for a in addrs:
        body = urllib.request.urlopen(f"http://{a}:8099/", timeout=10).read().decode()
        assert body.startswith("hello from web[")
    services = [s for i in st["instances"] for s in (i.get("services") or {}).values()]
    assert len(services) == 2 and all(s["alive"] is True for s in services), services
    # no free host is left for a third instance: refused before anything is made
    r = ssh_dodas.run("up", t, "--name", "web", "-i", "n=4", check=False)
    assert r.returncode == 1 and "needs 4 hosts and 1 of 3 are free" in r.stderr
    assert len(processes_of(WORKDIR / st["id"])) == 2, "the services run in the hosts' work directories"
    ssh_dodas.run("destroy", "web", "--yes")
    for a in addrs:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{a}:8099/", timeout=3)
    claims = json.loads((ssh_dodas.home / "data" / "ssh" / "lab.json").read_text())
    assert claims == {}
    assert not list(WORKDIR.glob(f"{st['id']}/*"))
    assert processes_of(WORKDIR / st["id"]) == {}, "destroy stops every service it started on the hosts"


def test_unchanged_up_on_a_full_pool_does_nothing(ssh_hosts, tmp_path, ssh_dodas):
    """The hosts a deployment holds are available to it: a second `up` of a deployment
    that fills the pool is not refused for want of free hosts, and changes nothing."""
    configure(ssh_dodas.home, ssh_hosts)
    t = web_template(tmp_path)
    ssh_dodas.run("up", t, "--name", "full", "-i", "n=3", "--max-providers", "1")
    pids = sorted(processes_of(WORKDIR / ssh_dodas.json("status", "full")["id"]))
    assert len(pids) == 3
    ssh_dodas.run("up", t, "--name", "full")
    last = json.loads(ssh_dodas.run("logs", "full", "--json").stdout.splitlines()[-1])
    assert last["message"].startswith("nothing to do"), last
    assert sorted(processes_of(WORKDIR / ssh_dodas.json("status", "full")["id"])) == pids, "no service was restarted"
    ssh_dodas.run("destroy", "full", "--yes")


def test_crash_recovery_over_ssh(ssh_hosts, tmp_path, ssh_dodas):
    """dodas killed (-9) in the middle of an `up` that fills the pool: the next `up`
    takes over the dead run's lock and hosts, and completes."""
    configure(ssh_dodas.home, ssh_hosts)
    t = web_template(tmp_path)
    proc = subprocess.Popen([*DODAS, "up", t, "--name", "crash", "-i", "n=3", "--max-providers", "1"],
                            env=ssh_dodas.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    claims = ssh_dodas.home / "data" / "ssh" / "lab.json"
    wait_while_running(proc, lambda: claims.exists() and len(json.loads(claims.read_text() or "{}")) == 3,
                       "three hosts were claimed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ssh_dodas.run("up", t, "--name", "crash")
    st = ssh_dodas.json("status", "crash")
    assert st["status"] == "CREATE_COMPLETE", st
    assert len(processes_of(WORKDIR / st["id"])) == 3
    ssh_dodas.run("destroy", "crash", "--yes")
    assert processes_of(WORKDIR / st["id"]) == {}
    assert json.loads(claims.read_text()) == {}
