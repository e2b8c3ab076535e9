"""Checks of the model that need several nodes at once or knowledge of a node
family (Kubernetes, Helm), made after the model is built. Problems are located
diagnostics; warnings (an outdated version, a placeholder token) never stop a plan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dodas.errors import Diagnostic
from dodas.model.deployment import IMPLICIT_AFTER, Node, Policy
from dodas.yamlsource import SourceMap

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


#: chart repositories INDIGO's and DODAS's templates use without declaring them (Helm 2
#: had `stable` configured): plan and up need them declared, validate says how
WELL_KNOWN_REPOS = {
    "stable": "https://charts.helm.sh/stable",
    "incubator": "https://charts.helm.sh/incubator",
    "bitnami": "https://charts.bitnami.com/bitnami",
    "jupyterhub": "https://jupyterhub.github.io/helm-chart/",
}


def only_reported(d: Diagnostic) -> Diagnostic:
    """A refusal of plan and up (`unsafe`), as validate reports it: a warning."""
    return Diagnostic(d.file, d.line, d.col, f"{d.message}; dodas plan and up refuse this until then")


def helm_releases(smap: SourceMap, nodes: dict[str, Node], diags: list[Diagnostic],
                  unsafe: list[Diagnostic] | None = None) -> None:
    """What can be known about a Helm release before anything runs: its chart's
    repository is declared, its values use only names the release has. A
    well-known repository left undeclared goes to `unsafe` (validate warns,
    plan and up refuse): dodas installs charts only from repositories a
    template names, and says which declaration is missing."""
    for n in nodes.values():
        if not n.derives_from("tosca.nodes.indigo.HelmInstall"):
            continue
        # Jinja2 (dodas.helm) only for a template that has a release: `up` of machines alone never pays it
        from dodas.helm import (BUNDLED, VALUES_URL_SCHEMES, ValuesError, bundled_chart, bundled_charts,
                                names_used)
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
                msg = f'node "{n.name}": chart "{chart}" comes from repository "{prefix}", which its repos do ' \
                      f"not declare{known}"
                if prefix in WELL_KNOWN_REPOS and unsafe is not None:
                    unsafe.append(smap.diag((*base, "chart"), f"{msg}: add to its properties repos: [{{name: "
                                            f"{prefix}, url: {WELL_KNOWN_REPOS[prefix]}}}]"))
                else:
                    diags.append(smap.diag((*base, "chart"), msg))
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


HTCONDOR = "tosca.nodes.dodas.HTCondor."
_COLLECTOR = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")


def htcondor_pools(smap: SourceMap, nodes: dict[str, Node], policies: Sequence[Policy],
                   diags: list[Diagnostic]) -> None:
    """HTCondor pools that could never run a job, known before anything starts.

    A pool is its central manager; schedds and startds join the one they require
    (a missing or mistyped requirement is the model's generic error). dodas's
    pools trust only their own trust domain, so: a central manager with execute
    nodes but no schedd never receives jobs; an external collector given to a
    Helm release (`condor_host`) would make its startds join another pool, which
    does not trust this deployment's key (a literal host with dodas's own chart; DODAS-TS's
    chart from its repository reads condor_host its own way, and an attribute of
    this template's nodes is this deployment's); flock_to names collectors, HOST[:PORT];
    an elastic policy watching htcondor must scale the hosts of execute nodes."""
    members: dict[str, dict[str, list[str]]] = {}
    for n in nodes.values():
        for kind in ("Schedd", "Startd"):
            if n.derives_from(HTCONDOR + kind):
                for r in n.requirements:
                    if r.name == "central_manager" and r.target in nodes:
                        members.setdefault(r.target, {}).setdefault(kind, []).append(n.name)
    for cm, kinds in sorted(members.items()):
        if kinds.get("Startd") and not kinds.get("Schedd"):
            startds = ", ".join(sorted(kinds["Startd"]))
            diags.append(smap.diag((*_NODES, cm), f'node "{cm}": its pool has execute nodes ({startds}) but no '
                                   f"{HTCONDOR}Schedd requires it: no job could ever reach them (dodas's pools "
                                   "trust only their own trust domain); add a schedd with "
                                   f'"- central_manager: {cm}"', key=True))
    for n in nodes.values():
        base = (*_NODES, n.name, "properties")
        host = n.properties.get("condor_host")
        if n.derives_from("tosca.nodes.DODAS.HelmInstall.HTCondor") and isinstance(host, str) and host \
                and _bundled_chart(n):
            diags.append(smap.diag((*base, "condor_host"), f'node "{n.name}": condor_host "{host}" is a collector '
                                   "outside this deployment: the release's execute nodes would join another pool, "
                                   "which does not trust this deployment's signing key; leave condor_host out "
                                   "(the release runs its own central manager)"))
        flock = n.properties.get("flock_to") if n.derives_from(HTCONDOR + "Schedd") else None
        for i, c in enumerate(flock if isinstance(flock, list) else []):
            port = str(c).rpartition(":")[2] if ":" in str(c) else "1"
            if not isinstance(c, str) or not _COLLECTOR.match(c) or not 0 < int(port) < 65536:
                diags.append(smap.diag((*base, "flock_to", i) if smap.exists((*base, "flock_to", i))
                                       else (*base, "flock_to"),
                                       f'node "{n.name}": flock_to entry {c!r} is not a collector (HOST or '
                                       "HOST:PORT, the port between 1 and 65535)"))
    for p in policies:
        if p.workload != "htcondor":
            continue
        if not any(n.derives_from(HTCONDOR + "Startd") and _compute_of(nodes, n.name) == p.node
                   for n in nodes.values()):
            name = p.source.removeprefix("policy ")
            where = _policy_targets(smap, name) or (*_NODES, p.node)
            diags.append(smap.diag(where, f'{p.source}: it watches htcondor, but "{p.node}" hosts no '
                                   f"{HTCONDOR}Startd: the machines it adds would never join a pool"))


def _policy_targets(smap: SourceMap, name: str) -> tuple | None:
    """Where a policy's targets are written (policies are a list of one-key maps)."""
    for i in range(1000):
        base = ("topology_template", "policies", i)
        if not smap.exists(base):
            return None
        if smap.exists((*base, name, "targets")):
            return (*base, name, "targets")
    return None


def _compute_of(nodes: dict[str, Node], name: str) -> str | None:
    """The Compute node a node runs on, through its chain of hosts."""
    seen: set[str] = set()
    while name in nodes and name not in seen:
        seen.add(name)
        if nodes[name].is_compute:
            return name
        name = nodes[name].host or ""
    return None


def _bundled_chart(n: Node) -> bool:
    """Whether a Helm release installs a chart dodas ships (dodas/NAME, no repository called dodas)."""
    from dodas.helm import BUNDLED

    chart = n.properties.get("chart")
    repos = n.properties.get("repos") or []
    return isinstance(chart, str) and chart.startswith(BUNDLED) and \
        not any(isinstance(r, dict) and r.get("name") == "dodas" for r in repos)
