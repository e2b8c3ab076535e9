"""The kubernetes provider: Helm-only templates onto the cluster of a kubeconfig
context, with the real helm binary. No cluster can run on these machines, so the
cluster here is one that does not answer: what is checked is everything dodas
does around the cluster (placement, preflight, the files and command it gives
helm, helm's own error quoted, nothing secret left behind, and a destroy that
refuses to claim success when it cannot see the cluster)."""

from __future__ import annotations

import json
import socket

import pytest
import yaml
from support.livecluster import Dodas
from support.paths import SPARK, TEMPLATES

HELM_ONLY = TEMPLATES / "spark-helm.yaml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def d(dodas_home, tmp_path) -> Dodas:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": f"https://127.0.0.1:{_closed_port()}"}}],
        "users": [{"name": "me", "user": {"token": "kube-credential-never-shown"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}},
                     {"name": "other", "context": {"cluster": "lab", "user": "me"}}]}))
    kubeconfig.chmod(0o600)
    cfg = dodas_home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(yaml.safe_dump({"providers": [
        {"name": "cluster", "type": "kubernetes", "kubeconfig": str(kubeconfig), "context": "lab"},
        {"name": "wrong-context", "type": "kubernetes", "kubeconfig": str(kubeconfig), "context": "prod"}]}))
    return Dodas(dodas_home)


def test_helm_only_template_plans_without_machines(d):
    p = d.json("plan", str(HELM_ONLY))
    assert [i["id"] for i in p["instances"]] == ["spark[0]"]
    assert not any(i["compute"] for i in p["instances"])


def test_placement_sends_helm_only_templates_to_clusters_only(d, dodas_home):
    r = d.run("up", str(HELM_ONLY), "--provider", "local", check=False)
    assert r.returncode == 1
    assert 'node "spark" is a Helm release with no host' in r.stderr and "provider of type kubernetes" in r.stderr
    r = d.run("up", str(SPARK), "--provider", "cluster", check=False)
    assert r.returncode == 1
    assert "is a machine; provider cluster is an existing Kubernetes cluster and makes none" in r.stderr
    r = d.run("up", str(HELM_ONLY), "--provider", "wrong-context", check=False)
    assert r.returncode == 1 and 'has no context "prod" (it has: lab, other)' in r.stderr
    assert d.json("list") == [], "refused before anything was recorded"
    (dodas_home / "config" / "providers.yaml").write_text("providers: []\n")
    r = d.run("up", str(HELM_ONLY), check=False)
    assert r.returncode == 1 and "no provider of type kubernetes is configured" in r.stderr


def test_unreachable_cluster_fails_naming_the_release_and_quoting_helm(d, dodas_home):
    r = d.run("up", str(HELM_ONLY), "--name", "sj", "-i", "spark_workers=3", "--keep-failed", check=False)
    assert r.returncode == 1
    assert "spark[0] failed" in r.stderr and "Helm upgrade --install" in r.stderr
    assert "Error: Kubernetes cluster unreachable" in r.stderr, "helm's own error, quoted"
    st = d.json("status", "sj")
    assert st["status"] == "CREATE_FAILED" and st["provider"] == "cluster"
    # what dodas gave helm: the chart it ships, its values; the token went in a file removed after use
    dep_dir = next((dodas_home / "data" / "deployments").iterdir())
    release_dir = dep_dir / "controller" / "spark-0"
    assert (release_dir / "chart" / "Chart.yaml").is_file()
    assert yaml.safe_load((release_dir / "dodas-values.yaml").read_text())["workers"]["replicas"] == 3
    assert not (release_dir / "secret-values.yaml").exists()
    token = d.outputs("sj", secrets=True)["jupyter_token"]
    assert token and len(token) >= 32
    events = d.run("logs", "sj").stdout
    everything = r.stdout + r.stderr + events + json.dumps(st)
    for f in dodas_home.rglob("*"):
        if f.is_file() and f.suffix != ".db":
            everything += f.read_text(errors="replace")
    assert token not in everything and "kube-credential-never-shown" not in everything
    # the providers command says the same about the cluster
    r = d.run("providers", "--check", check=False)
    assert r.returncode == 1 and "Kubernetes cluster unreachable" in r.stdout
    # as if the release had been installed: destroy runs the real uninstall playbook, with helm,
    # against the provider's context; the cluster does not answer, so it cannot claim everything is gone
    from dodas.configure.runner import CONFIGURE_DIR
    from dodas.state.store import Store
    store = Store()
    store.save_instance(store.require("sj").id, "spark", 0, state="started", attributes={
        "_undeploy": {"delete": {"implementation": str(CONFIGURE_DIR / "playbooks" / "helm" / "uninstall.yml"),
                                 "inputs": {}}},
        "_undeploy_properties": {"name": "spark", "chart": "dodas/spark-jupyter", "namespace": "spark"}})
    r = d.run("destroy", "sj", "--yes", check=False)
    assert r.returncode == 1
    assert "spark[0]: task 'Helm uninstall' failed" in r.stderr and "Kubernetes cluster unreachable" in r.stderr
    assert "cannot list what is left" in r.stderr
    assert d.json("status", "sj")["status"] == "DELETE_FAILED"


def test_kubernetes_provider_needs_no_secret_in_its_configuration(d, dodas_home):
    out = d.json("providers")
    row = next(p for p in out if p["name"] == "cluster")
    assert row["type"] == "kubernetes" and "context lab" in row["credentials"]
    assert "kube-credential-never-shown" not in json.dumps(out)


def test_spark_k8s_template_plans_its_release_on_the_front_end(d):
    p = d.json("plan", str(TEMPLATES / "spark-k8s.yaml"), "-i", "server_image=ost://cloud.example.org/img")
    by = {i["id"]: i for i in p["instances"]}
    assert by["spark[0]"]["host"] == "k8s_master[0]", "helm runs where the kubeconfig is"
    waves = {i["id"]: i["wave"] for i in p["instances"]}
    assert waves["k8s_master[0]"] < waves["k8s_worker[0]"] < waves["spark[0]"]


def test_values_url_that_cannot_be_fetched_fails_the_release_visibly(d, tmp_path):
    t = yaml.safe_load(HELM_ONLY.read_text())
    t["topology_template"]["node_templates"]["spark"]["properties"]["values_url"] = \
        f"http://127.0.0.1:{_closed_port()}/values.yaml"
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(t))
    r = d.run("up", str(f), "--name", "vu", check=False)
    assert r.returncode == 1
    assert "spark[0] failed" in r.stderr and "values.yaml could not be fetched" in r.stderr
    assert "hidden" not in r.stderr
