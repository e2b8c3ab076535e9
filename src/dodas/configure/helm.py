"""Helm releases: values rendered once their attributes are known, and the helm
command lines for install, upgrade and uninstall.

A release's `values_file` is a Jinja2 template over the release's own properties
(so `{{ externalIP }}` is the address the seed template passes with
get_attribute); it is rendered in a sandbox, after the engine has resolved every
deferred property, and an unknown name is an error that names it rather than an
empty string in a chart's values. Install is `helm upgrade --install --wait`:
it upgrades in place what exists, where the old DODAS role deleted and
reinstalled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TIMEOUT = "15m"


class ValuesError(Exception):
    pass


@dataclass
class Release:
    name: str
    chart: str
    namespace: str = "default"
    version: str | None = None
    repos: list[dict[str, str]] = field(default_factory=list)
    values: str = ""
    kubeconfig: str | None = None

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> Release:
        return cls(name=str(props["name"]), chart=str(props["chart"]), namespace=str(props.get("namespace") or
                   "default"), version=props.get("version") or None,
                   repos=[r for r in props.get("repos") or [] if isinstance(r, dict)],
                   values=render_values(str(props.get("values_file") or ""), props),
                   kubeconfig=props.get("kubeconfig_path") or None)


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


def _kube(r: Release) -> list[str]:
    return ["--kubeconfig", r.kubeconfig] if r.kubeconfig else []


def repo_add_commands(r: Release) -> list[list[str]]:
    cmds = [["helm", "repo", "add", "--force-update", repo["name"], repo["url"]] for repo in r.repos]
    if cmds:
        cmds.append(["helm", "repo", "update", *[repo["name"] for repo in r.repos]])
    return cmds


def install_command(r: Release, values_path: str | None, timeout: str = DEFAULT_TIMEOUT) -> list[str]:
    cmd = ["helm", "upgrade", "--install", r.name, r.chart, "--namespace", r.namespace, "--create-namespace",
           "--wait", "--timeout", timeout, *_kube(r)]
    if r.version:
        cmd += ["--version", str(r.version)]
    if values_path:
        cmd += ["--values", values_path]
    return cmd


def uninstall_command(r: Release, timeout: str = DEFAULT_TIMEOUT) -> list[str]:
    return ["helm", "uninstall", r.name, "--namespace", r.namespace, "--wait", "--timeout", timeout,
            "--ignore-not-found", *_kube(r)]
