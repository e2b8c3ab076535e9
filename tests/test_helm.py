"""Helm releases: values rendered with real deferred attributes, the helm command
lines for install/upgrade/uninstall, and the release problems caught at plan time.
(No Kubernetes cluster is reachable here; the chart itself is linted and rendered
by the real helm binary in test_chart.py; see the README.)"""

from __future__ import annotations

import pytest
from support.paths import SEED

from dodas import services
from dodas.configure import helm
from dodas.engine.context import RunContext
from dodas.errors import TemplateError
from dodas.model.deployment import Instance
from dodas.providers.base import Machine

VALUES = 'spark:\n  externalIPs: ["{{ externalIP }}"]\n  release: {{ name }}\n'


def test_values_rendered_with_the_resolved_address():
    plan = services.plan(str(SEED), [f"helm_values={VALUES}"])
    node = plan.model.nodes["helm_spark"]
    ctx = RunContext(plan.model, "dep", "demo")
    ctx.machines[Instance("k8s_master_server", 0)] = Machine("srv-1", "192.0.2.7", "10.0.0.5")
    props = ctx.evaluate(node.properties, Instance("helm_spark", 0))
    assert props["externalIP"] == "192.0.2.7"
    release = helm.Release.from_properties(props)
    assert release.values == 'spark:\n  externalIPs: ["192.0.2.7"]\n  release: spark\n'


def test_helm_command_lines():
    r = helm.Release(name="spark", chart="cloudpg/spark", namespace="analysis", version="1.2.3",
                     repos=[{"name": "cloudpg", "url": "https://cloud-pg.github.io/charts/"}],
                     values="x: 1\n", kube=helm.Kube(kubeconfig="/etc/kubernetes/admin.conf"),
                     labels={"dodas-deployment": "dep-1"})
    assert helm.repo_add_commands(r) == [
        ["helm", "repo", "add", "--force-update", "cloudpg", "https://cloud-pg.github.io/charts/"],
        ["helm", "repo", "update", "cloudpg"]]
    # install and upgrade are one command: upgrade in place, undone by helm if it fails
    assert helm.install_command(r, ["/work/values.yaml"]) == [
        "helm", "upgrade", "--install", "spark", "cloudpg/spark", "--namespace", "analysis", "--create-namespace",
        "--atomic", "--wait", "--timeout", "15m", "--kubeconfig", "/etc/kubernetes/admin.conf",
        "--version", "1.2.3", "--labels", "dodas-deployment=dep-1", "--values", "/work/values.yaml"]
    assert helm.uninstall_command(r) == [
        "helm", "uninstall", "spark", "--namespace", "analysis", "--wait", "--timeout", "15m",
        "--ignore-not-found", "--kubeconfig", "/etc/kubernetes/admin.conf"]


def test_command_lines_for_an_existing_cluster_context():
    kube = {"helm": "/opt/helm", "kubeconfig": "/home/u/.kube/config", "context": "lab"}
    r = helm.Release.from_properties({"name": "s", "chart": "dodas/spark-jupyter"}, kube, "dep-2")
    assert helm.repo_add_commands(r) == [], "a chart dodas ships needs no repository"
    cmd = helm.install_command(r, ["/d/dodas-values.yaml", "/d/secret-values.yaml"], "/d/chart")
    assert cmd[:5] == ["/opt/helm", "upgrade", "--install", "s", "/d/chart"]
    assert cmd[cmd.index("--kubeconfig"):cmd.index("--kubeconfig") + 4] == [
        "--kubeconfig", "/home/u/.kube/config", "--kube-context", "lab"]
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--values"] == [
        "/d/dodas-values.yaml", "/d/secret-values.yaml"], "later files override earlier ones"
    assert helm.commands({"name": "s", "chart": "dodas/spark-jupyter", "namespace": "a"}, kube)["test_command"] == [
        "/opt/helm", "test", "s", "--namespace", "a", "--timeout", "10m", "--logs",
        "--kubeconfig", "/home/u/.kube/config", "--kube-context", "lab"]
    assert helm.list_command(r.kube, "dep-2") == [
        "/opt/helm", "list", "--all-namespaces", "--all", "--selector", "dodas-deployment=dep-2",
        "--output", "json", "--kubeconfig", "/home/u/.kube/config", "--kube-context", "lab"]


def test_filter_plugin_builds_the_same():
    import importlib.util

    from dodas.configure.runner import CONFIGURE_DIR
    spec = importlib.util.spec_from_file_location("f", CONFIGURE_DIR / "filter_plugins" / "dodas_filters.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.dodas_helm({"name": "s", "chart": "repo/c", "repos": [{"name": "repo", "url": "https://x"}],
                          "values_file": "", "kubeconfig_path": "/k"}, "/d")
    assert out["install_command"][:5] == ["helm", "upgrade", "--install", "s", "repo/c"]
    assert "--values" not in out["install_command"], "no values file when there are no values"
    # hosted on a front end: the helm it reported; secrets in a file of their own
    out = mod.dodas_helm({"name": "s", "chart": "dodas/spark-jupyter", "kubeconfig_path": "/k"}, "/d", {}, "dep",
                         {"workers": {"replicas": 3}, "externalIP": None}, {"jupyter.token": "t0k"},
                         {"host": [{"attributes": {"helm": "/usr/local/bin/helm"}}]})
    assert out["install_command"][:5] == ["/usr/local/bin/helm", "upgrade", "--install", "s", "/d/chart"]
    files = {f["path"]: f["content"] for f in out["files"] + out["secret_files"]}
    assert files == {"/d/dodas-values.yaml": "workers:\n  replicas: 3\n",
                     "/d/secret-values.yaml": "jupyter:\n  token: t0k\n"}
    assert "t0k" not in str(out["files"]), "secrets are written by a task of their own"
    assert out["secret_file"] == "/d/secret-values.yaml" and "t0k" not in str(out["install_command"])
    assert out["bundled_chart"].rstrip("/").endswith("charts/spark-jupyter")


def test_values_with_an_unknown_name_are_refused_at_plan_time():
    with pytest.raises(TemplateError) as exc:
        services.plan(str(SEED), ["helm_values=ip: {{ externalIp }}"])
    (d,) = exc.value.diagnostics
    assert 'node "helm_spark": values use externalIp, which the release does not have' in d.message
    assert d.line > 1


def test_unknown_chart_repository_is_refused_at_plan_time(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text(SEED.read_text().replace('chart: "cloudpg/spark"', 'chart: "other/spark"'))
    with pytest.raises(TemplateError) as exc:
        services.plan(str(t))
    (d,) = exc.value.diagnostics
    assert 'chart "other/spark" comes from repository "other", which its repos do not declare' in d.message
    assert d.line == next(n for n, line in enumerate(t.read_text().splitlines(), 1) if "other/spark" in line)


def test_charts_dodas_ships_need_no_repository(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text(SEED.read_text().replace('chart: "cloudpg/spark"', 'chart: "dodas/spark-jupyter"'))
    services.plan(str(t))
    t.write_text(SEED.read_text().replace('chart: "cloudpg/spark"', 'chart: "dodas/nope"'))
    with pytest.raises(TemplateError) as exc:
        services.plan(str(t))
    (d,) = exc.value.diagnostics
    assert ('chart "dodas/nope" is not one of the charts dodas ships '
            '(cachingondemand, htcondor, inference, spark-jupyter)') in d.message


def test_rendering_error_names_the_problem():
    with pytest.raises(helm.ValuesError, match="values use missing"):
        helm.render_values("a: {{ missing }}", {"name": "x"})
    with pytest.raises(helm.ValuesError, match="not a valid template"):
        helm.names_used("a: {{ unclosed")


@pytest.fixture
def values_server(tmp_path):
    """A real HTTP server on loopback serving values templates."""
    import functools
    import http.server
    import threading

    (tmp_path / "values.yaml").write_text("spark:\n  externalIP: {{ externalIP }}\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_values_url_fetched_and_rendered_with_run_time_attributes(values_server, tmp_path):
    props = {"name": "s", "chart": "dodas/spark-jupyter", "externalIP": "192.0.2.7",
             "values_url": f"{values_server}/values.yaml", "values_file": "extra: 1\n"}
    out = helm.plan(props, str(tmp_path / "rel"), None, "dep", {"workers": {"replicas": 2}})
    files = {f["path"].rsplit("/", 1)[1]: f["content"] for f in out["files"]}
    assert files["url-values.yaml"] == "spark:\n  externalIP: 192.0.2.7\n"
    cmd = out["install_command"]
    assert [cmd[i + 1].rsplit("/", 1)[1] for i, a in enumerate(cmd) if a == "--values"] == [
        "dodas-values.yaml", "url-values.yaml", "values.yaml"], "typed, then values_url, then values_file"


def test_values_url_problems_name_the_url(values_server):
    props = {"name": "s", "chart": "c", "values_url": f"{values_server}/missing.yaml"}
    with pytest.raises(helm.ValuesError, match=r"values_url http://127.0.0.1:\d+/missing.yaml could not be fetched"):
        helm.plan(props, "/d")
    with pytest.raises(helm.ValuesError, match="values_url .* values use externalIP, which the release does not"):
        helm.plan({**props, "values_url": f"{values_server}/values.yaml"}, "/d")


def test_values_url_that_is_no_url_is_refused_at_plan_time(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text(SEED.read_text().replace('values_file: { get_input: helm_values }',
                                          'values_url: "ftp://example.org/values.yaml"'))
    with pytest.raises(TemplateError) as exc:
        services.plan(str(t))
    (d,) = exc.value.diagnostics
    assert 'values_url "ftp://example.org/values.yaml" is not an http://, https:// or file:// URL' in d.message
