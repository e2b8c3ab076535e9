"""Helm releases: values rendered with real deferred attributes, the helm command
lines for install/upgrade/uninstall, and the release problems caught at plan time.
(No Kubernetes cluster and no helm binary are available here; see the README.)"""

from __future__ import annotations

import pytest
from conftest import SEED

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
                     values="x: 1\n", kubeconfig="/etc/kubernetes/admin.conf")
    assert helm.repo_add_commands(r) == [
        ["helm", "repo", "add", "--force-update", "cloudpg", "https://cloud-pg.github.io/charts/"],
        ["helm", "repo", "update", "cloudpg"]]
    assert helm.install_command(r, "/work/values.yaml") == [
        "helm", "upgrade", "--install", "spark", "cloudpg/spark", "--namespace", "analysis", "--create-namespace",
        "--wait", "--timeout", "15m", "--kubeconfig", "/etc/kubernetes/admin.conf", "--version", "1.2.3",
        "--values", "/work/values.yaml"]
    assert helm.uninstall_command(r) == [
        "helm", "uninstall", "spark", "--namespace", "analysis", "--wait", "--timeout", "15m",
        "--ignore-not-found", "--kubeconfig", "/etc/kubernetes/admin.conf"]


def test_filter_plugin_builds_the_same():
    import importlib.util

    from dodas.configure.runner import CONFIGURE_DIR
    spec = importlib.util.spec_from_file_location("f", CONFIGURE_DIR / "filter_plugins" / "dodas_filters.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.dodas_helm({"name": "s", "chart": "repo/c", "repos": [{"name": "repo", "url": "https://x"}],
                          "values_file": "", "kubeconfig_path": "/k"}, "/v.yaml")
    assert out["install_command"][:5] == ["helm", "upgrade", "--install", "s", "repo/c"]
    assert "--values" not in out["install_command"], "no values file when there are no values"


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


def test_rendering_error_names_the_problem():
    with pytest.raises(helm.ValuesError, match="values use missing"):
        helm.render_values("a: {{ missing }}", {"name": "x"})
    with pytest.raises(helm.ValuesError, match="not a valid template"):
        helm.names_used("a: {{ unclosed")
