"""The seed template's orchestration on SSH hosts: which operations run on which
hosts, in which order, with which variables.

The Kubernetes and Helm operations here are a *recording stand-in*: this test
overrides their implementations (template-level interfaces win over the type's)
with a playbook that only appends what it was asked to do to a log on the host.
It checks the engine's orchestration of the seed, not Kubernetes: no cluster can
run on these machines (see the README)."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest
import yaml
from support.paths import SEED, TEMPLATES
from support.ssh_pool import configure

#: the hang guard, above what a test here needs on a busy machine: the seed's playbooks run over SSH
pytestmark = pytest.mark.timeout(1800)

RECORD = textwrap.dedent("""\
    - hosts: "{{ dodas_target }}"
      gather_facts: false
      tasks:
        - name: Record the operation
          ansible.builtin.shell: >-
            printf '%s\\n' {{ entry | to_json | quote }} >> {{ log | quote }}
          vars:
            entry:
              instance: "{{ dodas_instance }}"
              operation: "{{ op }}"
              host: "{{ dodas_address }}"
              properties: "{{ dodas_properties }}"
          changed_when: true
    """)


def test_seed_runs_in_order_on_ssh_hosts(ssh_hosts, tmp_path, ssh_dodas):
    configure(ssh_dodas.home, ssh_hosts)
    log = tmp_path / "operations.log"
    pb = tmp_path / "record.yml"
    pb.write_text(RECORD)
    seed = yaml.safe_load(SEED.read_text())
    nodes = seed["topology_template"]["node_templates"]
    for name, ops in (("k8s_master", ("configure", "delete")), ("k8s_wn", ("configure", "delete")),
                      ("helm_spark", ("configure", "delete"))):
        nodes[name]["interfaces"] = {"Standard": {
            op: {"implementation": str(pb), "inputs": {"op": op, "log": str(log)}} for op in ops}}
    t = tmp_path / "seed.yaml"
    t.write_text(yaml.safe_dump(seed, sort_keys=False))
    r = ssh_dodas.run("up", str(t), "--name", "seed", "--provider", "lab", check=False)
    assert r.returncode == 1 and "no host of the pool has 2 cpus" in r.stderr  # known before anything is made
    ssh_dodas.run("up", str(t), "--name", "seed", "--provider", "lab", "-i", "number_of_slaves=2",
          "-i", "num_cpus_master=1", "-i", "num_cpus_slave=1", "-i", "mem_size_master=1 GB",
          "-i", "mem_size_slave=1 GB")

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["operation"] for e in entries} == {"configure"}
    order = [e["instance"] for e in entries]
    assert order[0] == "k8s_master[0]"
    assert sorted(order[1:3]) == ["k8s_wn[0]", "k8s_wn[1]"]
    assert order[3:] == ["helm_spark[0]"]
    st = ssh_dodas.json("status", "seed")
    addr = {i["id"]: i["address"] for i in st["instances"] if i["kind"] == "compute"}
    master_ip = addr["k8s_master_server[0]"]
    by = {e["instance"]: e for e in entries}
    assert by["k8s_master[0]"]["host"] == master_ip
    assert by["k8s_master[0]"]["properties"]["kube_front_end_ip"] == master_ip
    for k in (0, 1):
        wn = by[f"k8s_wn[{k}]"]
        assert wn["host"] == addr[f"k8s_slave_server[{k}]"]
        assert wn["properties"]["front_end_ip"] == master_ip and wn["properties"]["nfs_master_ip"] == master_ip
    helm_run = by["helm_spark[0]"]
    assert helm_run["host"] == master_ip, "Helm runs where the kubeconfig is: the front end"
    assert helm_run["properties"]["externalIP"] == master_ip
    outs = ssh_dodas.outputs("seed")
    assert outs["jupyter_endpoint"] == f"http://{master_ip}:30888"
    assert outs["spark_endpoint"] == f"http://{master_ip}:30808"
    ssh_dodas.run("destroy", "seed", "--yes")
    deleted = [json.loads(line) for line in log.read_text().splitlines()][len(entries):]
    assert sorted(e["instance"] for e in deleted if e["operation"] == "delete") == [
        "helm_spark[0]", "k8s_master[0]", "k8s_wn[0]", "k8s_wn[1]"]


FRONT_END_PLAYBOOK = Path(__file__).resolve().parent.parent / "src/dodas/configure/playbooks/kubernetes/front_end.yml"


def _front_end_reporting_tasks(admin_conf: Path) -> list[dict]:
    """The Kubernetes front end's own reporting tasks, as the role ships them (its
    `no_log`s included): read the admin kubeconfig, report it as a secret. Only
    the file read is this test's (no kubeadm here)."""
    play = yaml.safe_load(FRONT_END_PLAYBOOK.read_text())[0]
    tasks = [dict(t) for t in play["tasks"] if t["name"] in ("Read the admin kubeconfig", "dodas_secret_report")]
    assert [t["name"] for t in tasks] == ["Read the admin kubeconfig", "dodas_secret_report"]
    tasks[0]["ansible.builtin.slurp"] = {"src": str(admin_conf)}
    return tasks


def test_a_reported_kubeconfig_is_stored_and_never_logged(tmp_path):
    """The front end's secret report goes the real way: a play on this machine
    reports the kubeconfig as the role does, the engine keeps it in the instance's
    secrets, `dodas kubeconfig` writes it (the API at the machine's address), and
    no event, log, output or file other than the state holds it."""
    import os
    import secrets

    from support.livecluster import Dodas, kill_leftovers

    d = Dodas(tmp_path / "home")
    token = "kc-" + secrets.token_hex(16)
    admin = tmp_path / "admin.conf"  # what kubeadm writes on the front end
    admin.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.5:6443"}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "admin", "context": {"cluster": "k", "user": "admin"}}]}))
    # a second node in the same wave: its run is another ansible-playbook, merged with the front end's
    (tmp_path / "front.yml").write_text(yaml.safe_dump([{"hosts": "{{ dodas_target }}", "gather_facts": False,
                                                         "tasks": _front_end_reporting_tasks(admin)}],
                                                       sort_keys=False))
    (tmp_path / "other.yml").write_text(yaml.safe_dump([{"hosts": "{{ dodas_target }}", "gather_facts": False,
                                                         "tasks": [{"ansible.builtin.debug": {"msg": "hi"}}]}]))
    t = tmp_path / "front.yaml"
    t.write_text(textwrap.dedent("""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.Front:
            derived_from: tosca.nodes.SoftwareComponent
            interfaces:
              Standard:
                configure: {implementation: front.yml}
          my.nodes.Other:
            derived_from: tosca.nodes.SoftwareComponent
            interfaces:
              Standard:
                configure: {implementation: other.yml}
        topology_template:
          node_templates:
            box: {type: tosca.nodes.indigo.Compute}
            front:
              type: my.nodes.Front
              requirements: [{host: box}]
            other:
              type: my.nodes.Other
              requirements: [{host: box}]
        """))
    try:
        r = d.run("up", str(t), "--name", "kc")
        out = tmp_path / "kc.kubeconfig"
        w = d.run("kubeconfig", "kc", "-o", str(out))
        address = next(i["address"] for i in d.json("status", "kc")["instances"] if i["id"] == "box[0]")
        conf = out.read_text()
        assert token in conf and f"server: https://{address}:6443" in conf
        assert oct(os.stat(out).st_mode & 0o777) == "0o600"
        shown = [r.stdout, r.stderr, w.stdout, w.stderr, d.run("status", "kc").stdout,
                 d.run("status", "kc", "--json").stdout, d.run("logs", "kc").stdout,
                 d.run("logs", "kc", "--json").stdout, d.run("outputs", "kc", "--show-secrets").stdout]
        assert not [s for s in shown if token in s], "the kubeconfig shows in dodas's output"
        from sqlalchemy import create_engine, text
        eng = create_engine(f"sqlite:///{d.home / 'data' / 'state.db'}")
        with eng.connect() as c:
            messages = [m for (m,) in c.execute(text("SELECT message FROM events"))]
            kept = [s for (s,) in c.execute(text("SELECT secrets FROM instances WHERE node = 'front'"))]
        eng.dispose()
        # the report task ran (its kubeconfig is kept, below); its internal step is not logged
        assert not [m for m in messages if "dodas_secret_report" in m], messages
        assert not [m for m in messages if token in m], "the kubeconfig is in the events table"
        assert len(kept) == 1 and token in kept[0], "the kubeconfig is kept in the instance's secrets"
        on_disk = [p for p in d.home.rglob("*") if p.is_file() and not p.name.startswith("state.db")
                   and token.encode() in p.read_bytes()]
        assert on_disk == [], "only the state keeps the kubeconfig (the runs' private directories are gone)"
        d.run("destroy", "kc", "--yes")
    finally:
        kill_leftovers(d.home)


def test_a_no_log_secret_report_fails_its_instance(tmp_path):
    """Ansible hides a no_log task's result from dodas entirely: such a report can
    never arrive, and the instance fails saying so instead of succeeding without it."""
    from support.livecluster import Dodas, kill_leftovers
    from support.templates import write_playbook_template

    d = Dodas(tmp_path / "home")
    t = write_playbook_template(tmp_path, """
        - name: dodas_secret_report
          ansible.builtin.set_fact:
            dodas_secret_report: {kubeconfig: "apiVersion: v1"}
          no_log: true
        """)
    try:
        r = d.run("up", t, "--name", "nl", "--keep-failed", check=False)
        assert r.returncode == 1 and "app[0] failed" in r.stderr
        assert "a secret report must not be no_log" in r.stderr
        d.run("destroy", "nl", "--yes")
    finally:
        kill_leftovers(d.home)


# the stand-in of the front end also reports where its helm is, as the real role does
FRONT_END = RECORD + textwrap.indent(textwrap.dedent("""\
    - name: dodas_report
      ansible.builtin.set_fact:
        dodas_report: {helm: "{{ helm_path }}"}
    """), "    ")


def test_spark_k8s_runs_the_real_helm_playbook_on_the_front_end(ssh_hosts, tmp_path, ssh_dodas):
    """templates/spark-k8s.yaml on SSH hosts. The Kubernetes front end and workers
    are the recording stand-in (the front end reports where helm is, as the real
    role does); the Helm release is the real install playbook, run over SSH on
    the front end, with the real helm, against a cluster that does not answer."""
    from dodas.providers.kubernetes import find_helm

    configure(ssh_dodas.home, ssh_hosts)
    log = tmp_path / "operations.log"
    (tmp_path / "record.yml").write_text(RECORD)
    (tmp_path / "front.yml").write_text(FRONT_END)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    kubeconfig = tmp_path / "admin.conf"  # what kubeadm would have written on the front end
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin",
        "clusters": [{"name": "k", "cluster": {"server": f"https://127.0.0.1:{closed}"}}],
        "users": [{"name": "admin", "user": {"token": "x"}}],
        "contexts": [{"name": "admin", "context": {"cluster": "k", "user": "admin"}}]}))
    t = yaml.safe_load((TEMPLATES / "spark-k8s.yaml").read_text())
    nodes = t["topology_template"]["node_templates"]
    stand_in = {"op": "configure", "log": str(log), "helm_path": find_helm()}
    nodes["k8s_master"]["interfaces"] = {"Standard": {"configure": {
        "implementation": str(tmp_path / "front.yml"), "inputs": stand_in}}}
    nodes["k8s_worker"]["interfaces"] = {"Standard": {"configure": {
        "implementation": str(tmp_path / "record.yml"), "inputs": {"op": "configure", "log": str(log)}}}}
    nodes["spark"]["properties"]["kubeconfig_path"] = str(kubeconfig)
    f = tmp_path / "spark-k8s.yaml"
    f.write_text(yaml.safe_dump(t, sort_keys=False))
    r = ssh_dodas.run("up", str(f), "--name", "sk", "--provider", "lab", "--keep-failed", "-i", "spark_workers=4",
              "-i", "server_image=ost://openstack.example.org/img", "-i", "num_cpus_master=1",
              "-i", "num_cpus_worker=1", "-i", "mem_size_master=1 GB", "-i", "mem_size_worker=1 GB", check=False)
    assert r.returncode == 1
    assert "spark[0] failed" in r.stderr and "Error: Kubernetes cluster unreachable" in r.stderr

    st = ssh_dodas.json("status", "sk")
    addr = {i["id"]: i["address"] for i in st["instances"] if i["kind"] == "compute"}
    master_ip = addr["k8s_master_server[0]"]
    order = [json.loads(line)["instance"] for line in log.read_text().splitlines()]
    assert order[0] == "k8s_master[0]" and sorted(order[1:]) == ["k8s_worker[0]", "k8s_worker[1]"]
    dep_id = Path(next((ssh_dodas.home / "data" / "deployments").iterdir())).name
    release_dir = Path(f"/var/tmp/dodas/{dep_id}/k8s_master_server-0/spark")
    values = yaml.safe_load((release_dir / "dodas-values.yaml").read_text())
    assert values["externalIP"] == master_ip, "the front end's address, known only at run time"
    assert values["workers"]["replicas"] == 4
    assert (release_dir / "chart" / "Chart.yaml").is_file(), "the chart dodas ships, copied to the front end"
    assert not (release_dir / "secret-values.yaml").exists()
    token = ssh_dodas.outputs("sk", secrets=True)["jupyter_token"]
    assert token and token not in r.stdout + r.stderr + ssh_dodas.run("logs", "sk").stdout
    ssh_dodas.run("destroy", "sk", "--yes")
    assert not release_dir.exists(), "destroy cleans the hosts"
