"""Checks of the model that need several nodes at once or knowledge of a node
family (Kubernetes, Helm), made after the model is built. Problems are located
diagnostics; warnings (an outdated version, a placeholder token) never stop a plan.
"""

from __future__ import annotations

from dodas.errors import Diagnostic
from dodas.model.deployment import IMPLICIT_AFTER, Node
from dodas.tosca.source import SourceMap

_NODES = ("topology_template", "node_templates")


def front_ends(smap: SourceMap, nodes: dict[str, Node], diags: list[Diagnostic]) -> None:
    """Every Kubernetes/Mesos worker has a front end to join."""
    for worker, front in IMPLICIT_AFTER.items():
        if any(n.derives_from(front) for n in nodes.values()):
            continue
        for n in nodes.values():
            if n.derives_from(worker):
                diags.append(smap.diag((*_NODES, n.name), f'node "{n.name}" is a {n.type} but the template '
                                       f"has no {front} for it to join", key=True))


def kubernetes_warnings(smap: SourceMap, nodes: dict[str, Node]) -> list[Diagnostic]:
    """Versions that will be mapped to a supported release, placeholder admin tokens."""
    from dodas.model.kube import map_version, token_warning

    out = []
    for n in nodes.values():
        base = (*_NODES, n.name, "properties")
        if n.derives_from("tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes") or \
                n.derives_from("tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes"):
            _, warning = map_version(n.properties.get("kube_version"))
            if warning:
                out.append(smap.diag((*base, "kube_version"), f'node "{n.name}": {warning}'))
        if n.derives_from("tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes") and "admin_token" in n.properties:
            warning = token_warning(n.properties.get("admin_token"))
            if warning:
                out.append(smap.diag((*base, "admin_token"), f'node "{n.name}": {warning}'))
    return out


def helm_releases(smap: SourceMap, nodes: dict[str, Node], diags: list[Diagnostic]) -> None:
    """What can be known about a Helm release before anything runs: its chart's
    repository is declared, its values use only names the release has."""
    from dodas.helm import (BUNDLED, VALUES_URL_SCHEMES, ValuesError, bundled_chart, bundled_charts,
                                      names_used)

    for n in nodes.values():
        if not n.derives_from("tosca.nodes.indigo.HelmInstall"):
            continue
        base = (*_NODES, n.name, "properties")
        chart, repos = n.properties.get("chart"), n.properties.get("repos") or []
        names = {r.get("name") for r in repos if isinstance(r, dict)}
        if isinstance(chart, str) and chart.startswith(BUNDLED) and "dodas" not in names:
            if bundled_chart(chart) is None:
                diags.append(smap.diag((*base, "chart"), f'node "{n.name}": chart "{chart}" is not one of the '
                                       f"charts dodas ships ({', '.join(bundled_charts())}); to use a chart "
                                       'repository called "dodas", declare it in repos'))
        elif isinstance(chart, str) and "/" in chart and "://" not in chart and not chart.startswith((".", "/")):
            prefix = chart.split("/", 1)[0]
            if prefix not in names:
                known = f" (it declares: {', '.join(sorted(str(x) for x in names))})" if names else ""
                diags.append(smap.diag((*base, "chart"), f'node "{n.name}": chart "{chart}" comes from '
                                       f'repository "{prefix}", which its repos do not declare{known}'))
        url = n.properties.get("values_url")
        if isinstance(url, str) and url and not url.startswith(VALUES_URL_SCHEMES):
            diags.append(smap.diag((*base, "values_url"), f'node "{n.name}": values_url "{url}" is not an '
                                   "http://, https:// or file:// URL"))
        values = n.properties.get("values_file")
        if isinstance(values, str) and ("{{" in values or "{%" in values):
            try:
                unknown = names_used(values) - set(n.properties)
            except ValuesError as exc:
                diags.append(smap.diag((*base, "values_file"), f'node "{n.name}": {exc}'))
                continue
            if unknown:
                diags.append(smap.diag((*base, "values_file"), f'node "{n.name}": values use '
                                       f"{', '.join(sorted(unknown))}, which the release does not have "
                                       f"(its properties: {', '.join(sorted(n.properties))})"))
