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

import yaml
from conftest import SEED, TEMPLATES
from test_ssh_hosts import configure, d, ssh_hosts  # noqa: F401 - fixtures

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


def test_seed_runs_in_order_on_ssh_hosts(ssh_hosts, tmp_path, d):  # noqa: F811 - fixtures
    configure(d.home, ssh_hosts)
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
    r = d.run("up", str(t), "--name", "seed", "--provider", "lab", check=False)
    assert r.returncode == 1 and "no host of the pool has 2 cpus" in r.stderr  # known before anything is made
    d.run("up", str(t), "--name", "seed", "--provider", "lab", "-i", "number_of_slaves=2",
          "-i", "num_cpus_master=1", "-i", "num_cpus_slave=1", "-i", "mem_size_master=1 GB",
          "-i", "mem_size_slave=1 GB")

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["operation"] for e in entries} == {"configure"}
    order = [e["instance"] for e in entries]
    assert order[0] == "k8s_master[0]"
    assert sorted(order[1:3]) == ["k8s_wn[0]", "k8s_wn[1]"]
    assert order[3:] == ["helm_spark[0]"]
    st = d.json("status", "seed")
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
    outs = d.outputs("seed")
    assert outs["jupyter_endpoint"] == f"http://{master_ip}:30888"
    assert outs["spark_endpoint"] == f"http://{master_ip}:30808"
    d.run("destroy", "seed", "--yes")
    deleted = [json.loads(line) for line in log.read_text().splitlines()][len(entries):]
    assert sorted(e["instance"] for e in deleted if e["operation"] == "delete") == [
        "helm_spark[0]", "k8s_master[0]", "k8s_wn[0]", "k8s_wn[1]"]


def test_kubeconfig_command(tmp_path, dodas_home, monkeypatch):
    """`dodas kubeconfig` writes the secret the front end reported, with the API at its public address."""
    import os

    from conftest import run_cli
    from fake_openstack import FakeCloud

    from dodas.model.deployment import Instance  # noqa: F401
    from dodas.providers import openstack
    from dodas.state.store import Store

    cloud = FakeCloud()
    monkeypatch.setattr(openstack, "_connect", lambda _cfg: cloud)
    cfg = dodas_home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("providers:\n  - {name: ost, type: openstack, rank: 1, wait_ssh: false,"
                   " image_hosts: [openstack.example.org]}\n")
    seed = yaml.safe_load(SEED.read_text())
    seed["topology_template"]["node_templates"] = {
        k: v for k, v in seed["topology_template"]["node_templates"].items() if k == "k8s_master_server"}
    seed["topology_template"]["outputs"] = {}
    t = tmp_path / "servers.yaml"
    t.write_text(yaml.safe_dump(seed))
    assert run_cli("up", str(t), "--name", "k", "-q").code == 0
    store = Store()
    dep = store.require("k")
    store.save_instance(dep.id, "k8s_master", 0, kind="software", state="started",
                        secrets={"kubeconfig": "apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.0.0.5:6443\n"})
    seed_full = tmp_path / "seed.yaml"
    seed_full.write_text(SEED.read_text())
    store.update(dep.id, template_text=SEED.read_text(), template_path=str(seed_full))
    out = tmp_path / "k.kubeconfig"
    r = run_cli("kubeconfig", "k", "-o", str(out))
    assert r.code == 0, r.err
    public = next(iter(cloud.fips.values())).floating_ip_address
    assert f"server: https://{public}:6443" in out.read_text()
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"


# the stand-in of the front end also reports where its helm is, as the real role does
FRONT_END = RECORD + textwrap.indent(textwrap.dedent("""\
    - name: dodas_report
      ansible.builtin.set_fact:
        dodas_report: {helm: "{{ helm_path }}"}
    """), "    ")



def test_spark_k8s_runs_the_real_helm_playbook_on_the_front_end(ssh_hosts, tmp_path, d):  # noqa: F811 - fixtures
    """templates/spark-k8s.yaml on SSH hosts. The Kubernetes front end and workers
    are the recording stand-in (the front end reports where helm is, as the real
    role does); the Helm release is the real install playbook, run over SSH on
    the front end, with the real helm, against a cluster that does not answer."""
    from dodas.providers.kubernetes import find_helm

    configure(d.home, ssh_hosts)
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
    r = d.run("up", str(f), "--name", "sk", "--provider", "lab", "--keep-failed", "-i", "spark_workers=4",
              "-i", "server_image=ost://openstack.example.org/img", "-i", "num_cpus_master=1",
              "-i", "num_cpus_worker=1", "-i", "mem_size_master=1 GB", "-i", "mem_size_worker=1 GB", check=False)
    assert r.returncode == 1
    assert "spark[0] failed" in r.stderr and "Error: Kubernetes cluster unreachable" in r.stderr

    st = d.json("status", "sk")
    addr = {i["id"]: i["address"] for i in st["instances"] if i["kind"] == "compute"}
    master_ip = addr["k8s_master_server[0]"]
    order = [json.loads(line)["instance"] for line in log.read_text().splitlines()]
    assert order[0] == "k8s_master[0]" and sorted(order[1:]) == ["k8s_worker[0]", "k8s_worker[1]"]
    dep_id = Path(next((d.home / "data" / "deployments").iterdir())).name
    release_dir = Path(f"/var/tmp/dodas/{dep_id}/k8s_master_server-0/spark")
    values = yaml.safe_load((release_dir / "dodas-values.yaml").read_text())
    assert values["externalIP"] == master_ip, "the front end's address, known only at run time"
    assert values["workers"]["replicas"] == 4
    assert (release_dir / "chart" / "Chart.yaml").is_file(), "the chart dodas ships, copied to the front end"
    assert not (release_dir / "secret-values.yaml").exists()
    token = d.outputs("sk", secrets=True)["jupyter_token"]
    assert token and token not in r.stdout + r.stderr + d.run("logs", "sk").stdout
    d.run("destroy", "sk", "--yes")
    assert not release_dir.exists(), "destroy cleans the hosts"
