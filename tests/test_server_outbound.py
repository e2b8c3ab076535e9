"""A hostile user against a real `dodas server` (the development issuer, real
tokens): nothing a template names makes the server reach its own network
(SSRF), nor copy a directory of the server into a release (bundled chart names).

The internal service is a loopback listener of the test that records every
connection it accepts (support/listener.py): the attacker gets a located refusal
(422) or a failed deployment whose events quote nothing of the internal answer,
and the listener saw no connection at all. A server with a kubernetes provider
whose cluster does not answer runs the real install play (and the real helm):
what dodas fetches for it (a values file, a repository's index and chart) goes
through the fetcher, Helm fetching nothing itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import textwrap

import pytest
import yaml
from support.listener import INTERNAL, LOOPBACK_FORMS
from support.server import API

from dodas.helm import CHARTS


def helm_template(chart: str, repos: str = "", values_url: str = "") -> str:
    props = {"name": "app", "chart": chart, "namespace": "ns"}
    if repos:
        props["repos"] = [{"name": "x", "url": repos}]
    if values_url:
        props["values_url"] = values_url
    body = textwrap.indent(yaml.safe_dump(props, default_flow_style=False, sort_keys=False), " " * 8)
    return ("tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n"
            "    app:\n      type: tosca.nodes.indigo.HelmInstall\n      properties:\n" + body)


def line_of(text: str, needle: str) -> int:
    return next(n for n, ln in enumerate(text.splitlines(), 1) if needle in ln)


def refused(api, name: str, text: str) -> dict:
    """The one located diagnostic of a create the server refuses; nothing recorded."""
    r = api.create(name, text)
    assert r.status_code == 422, r.text
    diags = r.json()["error"]["diagnostics"]
    assert len(diags) == 1 and diags[0]["file"] == f"{name}.yaml", diags
    assert api.get(f"{API}/{name}").status_code == 404
    assert INTERNAL not in r.text
    return diags[0]


def test_chart_repositories_and_values_on_the_servers_network_are_refused(server, listener):
    internal = listener()
    internal.route("/index.yaml")
    internal.route("/secret.yaml")
    alice = server.as_("alice")
    for host in LOOPBACK_FORMS:
        repo = f"http://{host}:{internal.port}/"
        text = helm_template("x/app", repos=repo)
        d = refused(alice, "repo", text)
        assert d["line"] == line_of(text, "url:"), d
        assert d["message"].startswith(f'node "app": repository url "{repo}" reaches '), d
        assert "address of the server's network" in d["message"] and "fetch_allow" in d["message"], d
        url = f"http://{host}:{internal.port}/secret.yaml"
        text = helm_template("dodas/inference", values_url=url)
        d = refused(alice, "values", text)
        assert d["line"] == line_of(text, "values_url:") and f'values_url "{url}" reaches ' in d["message"], d
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/"):
        d = refused(alice, "metadata", helm_template("dodas/inference", values_url=url))
        assert "a cloud metadata address of the server's network" in d["message"], d
    assert internal.connections == []


@pytest.mark.parametrize("chart,says", [
    ("oci://127.0.0.1:5000/charts/app", "an oci:// registry"),
    ("oci://registry.example.org/charts/app", "an oci:// registry"),
    ("https://charts.example.org/app-1.0.0.tgz", "a chart URL"),
    ("/etc/ssl", "a path of the server"),
    ("./app", "a path of the server"),
    ("x/../../../etc", "a path of the server"),
    ("app", "a path of the server"),
])
def test_charts_helm_would_fetch_or_read_itself_are_refused(server, chart, says):
    text = helm_template(chart, repos="https://1.1.1.1/")  # public, named without DNS (none here)
    d = refused(server.as_("alice"), "chart", text)
    assert d["line"] == line_of(text, "chart:"), d
    assert d["message"].startswith(f'node "app": chart "{chart}" is not REPOSITORY/NAME') and says in d["message"], d


@pytest.mark.parametrize("chart", ["dodas/../../configure/charts/htcondor", "dodas/../..", "dodas/./inference"])
def test_bundled_chart_names_are_confined_to_the_bundled_charts(server, chart):
    text = helm_template(chart)
    d = refused(server.as_("alice"), "bundled", text)
    assert d["line"] == line_of(text, "chart:"), d
    assert f'chart "{chart}" is not one of the charts dodas ships' in d["message"], d


# -- at run time: a server with a kubernetes provider --------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster_server(serve, tmp_path):
    """serve(**config) with a kubernetes provider whose cluster does not answer, for /cms."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": f"https://127.0.0.1:{_closed_port()}"}}],
        "users": [{"name": "me", "user": {"token": "kube-credential"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}]}))
    kubeconfig.chmod(0o600)
    providers = [{"name": "cluster", "type": "kubernetes", "kubeconfig": str(kubeconfig), "context": "lab"}]

    def start(**config):
        return serve(providers=providers, default_providers=["cluster"],
                     groups={"/cms": {"providers": ["cluster"], "operate": True}}, **config)
    return start


def failed_events(api, name: str) -> str:
    api.wait(name, ("CREATE_FAILED",))
    r = api.get(f"{API}/{name}/events", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return json.dumps(r.json())


def test_a_values_url_redirected_to_the_servers_network_is_not_followed(cluster_server, listener):
    public, internal = listener("127.0.0.1"), listener("127.0.0.2")  # only the first is allowed
    secret = internal.route("/secret.yaml")
    server = cluster_server(fetch_allow=["127.0.0.1"])
    alice = server.as_("alice")
    start = public.redirect("/values.yaml", secret)
    assert alice.create("redirect", helm_template("dodas/inference", values_url=start)).status_code == 202
    events = failed_events(alice, "redirect")
    assert "redirects to http://127.0.0.2, which reaches 127.0.0.2, a loopback address" in events, events
    assert INTERNAL not in events
    assert [h.path for h in public.requests] == ["/values.yaml"] and internal.connections == []


def test_an_allowed_repository_is_fetched_by_dodas_and_helm_installs_the_archive(cluster_server, listener):
    repo = listener()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(CHARTS / "inference", arcname="inference")
    repo.route("/inference-1.0.0.tgz", buf.getvalue())
    repo.route("/index.yaml", yaml.safe_dump({"apiVersion": "v1", "entries": {"inference": [
        {"version": "1.0.0", "urls": ["inference-1.0.0.tgz"], "digest": hashlib.sha256(buf.getvalue()).hexdigest()}]}}))
    server = cluster_server(fetch_allow=["127.0.0.1"])
    alice = server.as_("alice")
    assert alice.create("fetched", helm_template("x/inference", repos=repo.url("/"))).status_code == 202
    events = failed_events(alice, "fetched")
    assert "Kubernetes cluster unreachable" in events, "helm ran, on the archive dodas fetched: " + events
    assert {(h.path, h.agent) for h in repo.requests} == {("/index.yaml", "dodas"), ("/inference-1.0.0.tgz", "dodas")}
    # the same repository on a server that does not allow it: refused when asked, never reached
    other = cluster_server()
    repo.connections.clear()
    d = refused(other.as_("alice"), "fetched", helm_template("x/inference", repos=repo.url("/")))
    assert "reaches 127.0.0.1, a loopback address" in d["message"] and repo.connections == []


def test_an_oci_chart_is_taken_from_a_host_the_operator_names(cluster_server):
    """Helm reaches an oci:// registry itself: only one fetch_allow names is planned."""
    server = cluster_server(fetch_allow=["registry.example.org"])
    alice = server.as_("alice")
    d = refused(alice, "oci", helm_template("oci://127.0.0.1:5000/charts/app"))
    assert 'chart "oci://127.0.0.1:5000/charts/app" is not REPOSITORY/NAME' in d["message"], d
    assert alice.create("oci", helm_template("oci://registry.example.org/charts/app")).status_code == 202
    alice.wait("oci", ("CREATE_FAILED",))  # no such registry here: helm's own failure, after planning
