"""Helm: releases, their values templates and the helm command lines.

Shared by the model's checks (a values template's names, bundled charts, at plan
time), configure/ (what the install playbook writes and runs, configure/helm.py)
and the kubernetes provider (a deployment's releases by label, uninstall): it
imports nothing of dodas, so none of them depends on another through it.

A release's `values_file` is a Jinja2 template over the release's own properties
(so `{{ externalIP }}` is the address the seed template passes with
get_attribute); it is rendered in a sandbox, after the engine has resolved every
deferred property, and an unknown name is an error that names it rather than an
empty string in a chart's values. Install is `helm upgrade --install --atomic`:
it upgrades in place what exists (where the old DODAS role deleted and
reinstalled), and a failed install or upgrade is undone by Helm itself, so a
failure leaves nothing half made on the cluster.

Charts named `dodas/NAME` are the charts dodas ships (configure/charts/NAME).
Every release carries the label `dodas-deployment=<id>`, by which a destroy
after lost state still finds it (`helm list --selector`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TIMEOUT = "15m"
VALUES_URL_SCHEMES = ("http://", "https://", "file://")
#: the charts dodas ships: data files of the package, where configure/ copies them from
CHARTS = Path(__file__).resolve().parent / "configure" / "charts"
BUNDLED = "dodas/"
LABEL = "dodas-deployment"


class ValuesError(Exception):
    pass


def bundled_charts() -> list[str]:
    return sorted(p.parent.name for p in CHARTS.glob("*/Chart.yaml"))


def bundled_chart(chart: str) -> Path | None:
    """The directory of a chart dodas ships, for `dodas/NAME`: NAME is one plain
    name, and the directory found lies inside the bundled charts' (resolved,
    links followed), so `dodas/../../DIR` names nothing rather than a directory
    of the machine that a release would copy."""
    if not chart.startswith(BUNDLED):
        return None
    name = chart[len(BUNDLED):]
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    root = CHARTS.resolve()
    path = (root / name).resolve()
    if path.parent != root or not (path / "Chart.yaml").is_file():
        return None
    return path


@dataclass
class Kube:
    """Where helm runs against: the binary, a kubeconfig and (optionally) its context."""

    helm: str = "helm"
    kubeconfig: str | None = None
    context: str | None = None

    def args(self) -> list[str]:
        out = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else []
        return out + (["--kube-context", self.context] if self.context else [])


@dataclass
class Release:
    name: str
    chart: str
    namespace: str = "default"
    version: str | None = None
    repos: list[dict[str, str]] = field(default_factory=list)
    values: str = ""
    kube: Kube = field(default_factory=Kube)
    labels: dict[str, str] = field(default_factory=dict)
    #: a directory of the release's own for helm's repository list and cache, so
    #: that adding the template's repositories never changes the user's helm set-up
    repo_dir: str | None = None

    def repo_args(self) -> list[str]:
        if not self.repo_dir:
            return []
        return ["--repository-config", f"{self.repo_dir}/repositories.yaml",
                "--repository-cache", f"{self.repo_dir}/cache"]

    @classmethod
    def from_properties(cls, props: dict[str, Any], kube: dict[str, Any] | None = None,
                        deployment_id: str | None = None, render: bool = True) -> Release:
        """A release from a HelmInstall node's resolved properties. `kube` (given by
        a kubernetes provider) names the cluster; otherwise the node's
        kubeconfig_path on the front end it runs on."""
        k = Kube(helm=(kube or {}).get("helm") or "helm",
                 kubeconfig=(kube or {}).get("kubeconfig") or props.get("kubeconfig_path") or None,
                 context=(kube or {}).get("context") or None)
        return cls(name=str(props["name"]), chart=str(props["chart"]),
                   namespace=str(props.get("namespace") or "default"), version=props.get("version") or None,
                   repos=[r for r in props.get("repos") or [] if isinstance(r, dict)],
                   values=render_values(str(props.get("values_file") or ""), props) if render else "", kube=k,
                   labels={LABEL: deployment_id} if deployment_id else {})


def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                autoescape=False)


def names_used(template: str) -> set[str]:
    """The variables a values template reads (for the check at plan time)."""
    try:
        return set(meta.find_undeclared_variables(_env().parse(template)))
    except jinja2.TemplateSyntaxError as exc:
        raise ValuesError(f"values are not a valid template (line {exc.lineno}: {exc.message})") from None


def render_values(template: str, context: dict[str, Any]) -> str:
    if "{{" not in template and "{%" not in template:
        return template
    missing = names_used(template) - set(context)
    if missing:
        raise ValuesError(f"values use {', '.join(sorted(missing))}, which the release does not have "
                          f"(it has: {', '.join(sorted(context))})")
    try:
        return _env().from_string(template).render(**context)
    except jinja2.TemplateError as exc:
        raise ValuesError(f"values could not be rendered: {exc}") from None


def repo_add_commands(r: Release) -> list[list[str]]:
    if bundled_chart(r.chart):
        return []
    cmds = [[r.kube.helm, "repo", "add", "--force-update", repo["name"], repo["url"], *r.repo_args()]
            for repo in r.repos]
    if cmds:
        cmds.append([r.kube.helm, "repo", "update", *[repo["name"] for repo in r.repos], *r.repo_args()])
    return cmds


def install_command(r: Release, values_paths: list[str], chart_path: str | None = None,
                    timeout: str = DEFAULT_TIMEOUT) -> list[str]:
    """`helm upgrade --install`; later values files override earlier ones."""
    cmd = [r.kube.helm, "upgrade", "--install", r.name, chart_path or r.chart, "--namespace", r.namespace,
           "--create-namespace", "--atomic", "--wait", "--timeout", timeout, *r.kube.args()]
    if r.version and not chart_path:
        cmd += ["--version", str(r.version)]
    if r.labels:
        cmd += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(r.labels.items()))]
    if r.repos and not chart_path:
        cmd += r.repo_args()
    for p in values_paths:
        cmd += ["--values", p]
    return cmd


def uninstall_command(r: Release, timeout: str = DEFAULT_TIMEOUT) -> list[str]:
    return [r.kube.helm, "uninstall", r.name, "--namespace", r.namespace, "--wait", "--timeout", timeout,
            "--ignore-not-found", *r.kube.args()]


def list_command(kube: Kube, deployment_id: str) -> list[str]:
    """Every release of a deployment on a cluster, whatever dodas's state says."""
    return [kube.helm, "list", "--all-namespaces", "--all", "--selector", f"{LABEL}={deployment_id}",
            "--output", "json", *kube.args()]


def test_command(r: Release, timeout: str = "10m") -> list[str]:
    """`helm test`: the chart's own checks, run in the cluster (their pods' logs shown)."""
    return [r.kube.helm, "test", r.name, "--namespace", r.namespace, "--timeout", timeout, "--logs",
            *r.kube.args()]
