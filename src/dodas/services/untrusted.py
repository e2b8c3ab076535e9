"""What a server refuses in a template it was sent, beyond what any plan checks.

A template sent to a server comes from someone who may not be trusted with the
server's machine or its network. Playbooks outside dodas's own and remote
imports are already refused by planning with `allow_external_playbooks=False`
and `offline=True`; here: a Helm release's `values_url` may not be `file://`
(the server's files), and neither it nor an XCache's `origin_url` (which the
cache reads, on the server's own machine with the local provider) may name a
host that resolves to a loopback, link-local, private or otherwise non-public
address (the server's network), unless the operator lists it in `fetch_allow`
(a host name, an address or a network such as 10.1.0.0/16); the address rule
is dodas.outbound's, which the worker applies again at each fetch (the values
file, a chart repository's index and the chart's archive: Helm reaches nothing
a user named). A Helm chart is a repository's `REPO/NAME` or one dodas ships
(`dodas/NAME`): a path (the server's files), a chart URL or an `oci://`
registry (which Helm would reach itself) only if `fetch_allow` names its host. And
no property naming a path of a host (an origin's export, a cache's directory,
a data set) may be set unless the deployment's machines are its own (a cloud's
VMs): with the local provider that host is the server's machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from dodas import outbound
from dodas.errors import Diagnostic
from dodas.model.template import Template
from dodas.model.xrootd import origin_url
from dodas.plan.plan import Plan


def file_imports(template: Template) -> list[Diagnostic]:
    """The template's imports of files, refused before anything reads them: a
    template sent to a server comes alone, so a file it names is the server's own
    (/etc/..., another user's template beside the request's copy), and reading it
    would tell its existence at least. The bundled library and URLs are left to
    planning (offline: only those mapped to the bundled library)."""
    from dodas.tosca import imports

    entries = template.data.get("imports")
    smap = template.smap
    return [smap.diag(("imports", i), f'import "{imports.entry_ref(entry)}" names a file: a template sent to a '
                                      "server imports only the bundled types and URLs, never the server's files")
            for i, entry in enumerate(entries if isinstance(entries, list) else []) if imports.names_a_file(entry)]


def problems(plan: Plan, template: Template, fetch_allow: Iterable[str] = ()) -> list[Diagnostic]:
    """Each refused value, located in the template file."""
    allow = list(fetch_allow)
    out = []
    smap = template.smap
    for node in plan.model.nodes.values():
        for prop in URL_PROPERTIES:
            url = node.properties.get(prop)
            if prop == "origin_url" and not url and node.properties.get("origin_host"):
                url = origin_url(node)  # INDIGO's XCache: origin_host and origin_xrd_port
            if not isinstance(url, str) or not url:
                continue
            why = url_problem(url, allow, prop)
            if why:
                where = ("topology_template", "node_templates", node.name, "properties",
                         "origin_host" if prop == "origin_url" and not node.properties.get(prop) else prop)
                out.append(smap.diag(where, f'node "{node.name}": {why}'))
        if node.derives_from(HELM):
            out.extend(_helm_problems(node, smap, allow))
    return out


#: properties that name a path of the machine a node runs on, by the type that
#: has them (and every type derived from it: INDIGO's XCache is a dodas Cache):
#: an origin exports that directory to whoever reads through the cache, a cache
#: writes and removes there, the pipeline reads its data set there
HOST_PATH_PROPERTIES = {
    "tosca.nodes.dodas.MLPipeline": ("dataset",),
    "tosca.nodes.dodas.XRootD.Origin": ("export_path",),
    "tosca.nodes.dodas.XRootD.Cache": ("cache_path",),
}

#: provider types whose machines are made for the deployment alone (a cloud's
#: VMs): a path on them is the deployment's own. Every other kind of host is
#: not the user's: the server's own machine (local), the operator's hosts (ssh),
#: a simulated one, a cluster's nodes.
OWN_MACHINES = ("ec2", "openstack")


def host_paths(plan: Plan, template: Template, provider_types: Iterable[str]) -> list[Diagnostic]:
    """Each property naming a path of a host the user does not own (the server's
    own machine with the local provider), located in the template file: a
    template sent to a server names none of the server's files."""
    foreign = sorted(set(provider_types) - set(OWN_MACHINES))
    if not foreign:
        return []
    out = []
    for node in plan.model.nodes.values():
        for family, props in HOST_PATH_PROPERTIES.items():
            if not node.derives_from(family):
                continue
            for prop in props:
                if node.properties.get(prop):
                    where = ("topology_template", "node_templates", node.name, "properties", prop)
                    out.append(template.smap.diag(where, f'node "{node.name}": {prop} names a path of the machine it '
                                                         f"runs on, which is not yours on a server (provider type "
                                                         f"{', '.join(foreign)}): a template sent to a server names "
                                                         "none of the server's files"))
    return out


#: what a user's template may make the server's machines reach, by property:
#: (schemes, default port, why). A Helm release's values are fetched by the
#: server; a cache's origin is read by the cache, on the server's own machine
#: with the local provider.
URL_PROPERTIES = {
    "values_url": (("http", "https"), {"http": 80, "https": 443}, "a server fetches nothing from its own files"),
    "origin_url": (("root", "roots"), {"root": 1094, "roots": 1094}, "a cache reads from an XRootD origin only"),
}


def url_problem(url: str, allow: list[str], prop: str = "values_url") -> str | None:
    """Why the server may not let `url` be reached, or None."""
    schemes, ports, why = URL_PROPERTIES[prop]
    if urlsplit(url).scheme not in schemes:
        return f'{prop} "{url}" is not {"/".join(schemes)}: {why}'
    problem = outbound.refusal(url, allow, schemes, ports)
    return f'{prop} "{url}" {problem}' if problem else None


HELM = "tosca.nodes.indigo.HelmInstall"
#: a chart as a server takes it: REPO/NAME (or dodas/NAME), each part a plain name
_CHART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def _helm_problems(node: Any, smap: Any, allow: list[str]) -> list[Diagnostic]:
    """A release's repositories reach only public (or allowed) addresses; its
    chart names no file of the server and nothing Helm would fetch itself."""
    out = []
    base = ("topology_template", "node_templates", node.name, "properties")
    repos = node.properties.get("repos")
    for i, repo in enumerate(repos if isinstance(repos, list) else []):
        url = repo.get("url") if isinstance(repo, dict) else None
        if not isinstance(url, str):
            continue
        problem = outbound.refusal(url, allow)
        if problem:
            where = (*base, "repos", i, "url") if smap.exists((*base, "repos", i, "url")) else (*base, "repos")
            out.append(smap.diag(where, f'node "{node.name}": repository url "{url}" {problem}'))
    chart = node.properties.get("chart")
    if isinstance(chart, str) and chart and not _plain_chart(chart, allow):
        out.append(smap.diag((*base, "chart"), f'node "{node.name}": chart "{chart}" is not REPOSITORY/NAME: a '
                             "template sent to a server names a chart of a declared repository or one dodas ships "
                             "(dodas/NAME), never a path of the server, a chart URL or an oci:// registry, "
                             "unless the server's operator names its host in fetch_allow"))
    return out


def _plain_chart(chart: str, allow: list[str]) -> bool:
    if "://" in chart:  # oci://, https://...tgz: Helm would fetch it itself, so only from a host named
        try:
            host = urlsplit(chart).hostname or ""
        except ValueError:
            return False
        return bool(host) and outbound.allowed(host, _literal(host), [a for a in allow if a])
    return bool(_CHART.fullmatch(chart)) and ".." not in chart.split("/")


def _literal(host: str) -> Any:
    import ipaddress

    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _placeable(name: str, provider: str | None, allow_provider: Any) -> list[str]:
    """The types of the providers the plan may be placed on: the deployment's
    own, the one asked for, or every one the caller may use (a path is allowed
    only when all of them make machines of the deployment's own)."""
    from dodas.errors import DodasError
    from dodas.providers import config
    from dodas.state.store import Store

    try:
        dep = Store().get(name)
        if dep is not None and dep.provider and dep.status != "DELETE_COMPLETE":
            return [config.get(dep.provider).type]
        if provider:
            return [config.get(provider).type]
        return [c.type for c in config.load() if allow_provider is None or allow_provider(c)] or ["unknown"]
    except DodasError:  # placement says what is wrong with the providers; the path is refused meanwhile
        return ["unknown"]


def plan(template: str, *, name: str, given: dict, provider: str | None, allow_provider: Any,
         fetch_allow: Iterable[str], origin: str | None, shown: str, remove: Iterable[str] = (),
         refresh: bool = False) -> Any:
    """Plan a template that was sent to a server, with a server's rules: no file
    imports, only dodas's playbooks, nothing fetched but the bundled library, no
    DODAS_INPUT_ variables, the fetch checks above, only the providers
    `allow_provider` accepts; `remove` names instances to take out
    (services/removal.py); the provider asked about recorded services only when
    `refresh` (a plan shown, as `dodas plan` refreshes by default). Messages are located in `shown` (the sender's
    file name), not in the server's copy at `template`. The one home of these
    rules, for the request that asks and for the worker that carries it out."""
    from dataclasses import replace

    from dodas.errors import TemplateError
    from dodas.services import planning

    fetch_allow = tuple(str(a) for a in fetch_allow)
    try:
        tpl = Template.read(template)  # read once: checked, planned and stored
        refused = file_imports(tpl)
        if refused:
            raise TemplateError(refused)
        def vet(plan: Plan) -> None:
            found = problems(plan, tpl, fetch_allow) + host_paths(plan, tpl, _placeable(name, provider, allow_provider))
            if found:
                raise TemplateError(found)
        dplan = planning.prepare(tpl, name=name, given=given, provider_name=provider, offline=True,
                                 allow_external_playbooks=False, refresh=refresh, environment=False,
                                 allow_provider=allow_provider, origin=origin, vet=vet, remove=tuple(remove))
        dplan.plan.model.fetch_allow = fetch_allow  # the worker fetches through dodas.outbound only
        dplan.plan.model.template_path = shown  # what the plan's JSON names: the sender's file, not the copy
        dplan.plan.model.warnings = [replace(w, file=shown if w.file == template else w.file,
                                             message=w.message.replace(template, shown))
                                     for w in dplan.plan.model.warnings]  # located in the sender's file too
    except TemplateError as exc:
        # the server's copy is named nowhere: not as the file, nor inside a message ("declared at ...")
        raise TemplateError([replace(d, file=shown if d.file == template else d.file,
                                     message=d.message.replace(template, shown)) for d in exc.diagnostics]) \
            from None
    return dplan
