"""What a server's caller may read, as every face shows it (the v1 API, the
dashboard, IM's API): listings, a deployment's view, its events, outputs,
states, topology and forms. Each checks who may read what (tenancy.py) and
reads through services/read.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from dodas.services import tenancy
from dodas.services.tenancy import Caller, Refused
from dodas.state import queue


def providers(cfg: Any, caller: Caller) -> list[dict[str, Any]]:
    from dodas.services import read

    ok = tenancy.allowed(caller, cfg)
    return [{"name": p["name"], "type": p["type"], "rank": p["rank"]} for p in read.providers()
            if ok(SimpleNamespace(name=p["name"], type=p["type"]))]


def deployments(caller: Caller, status: str | None = None, limit: int = 100, offset: int = 0, *,
                destroyed: bool = True) -> dict[str, Any]:
    """The deployments the caller may read, by name, a page at a time; those asked
    for and not started yet are QUEUED. Each row has its owner's name and the
    file name of its template. Without `destroyed`, DELETE_COMPLETE ones are left
    out (a list of what runs now), unless `status` asks for them."""
    from dodas.services.answers import public

    from dodas.services import read

    visible = queue.visible_to(caller.key, caller.groups, caller.admin)
    listed = read.list_deployments(include_deleted=True, names=None if caller.admin else sorted(visible))
    rows = {d["name"]: d for d in listed if d["name"] in visible}
    for name in set(visible) - set(rows):  # asked for, not started yet
        rows[name] = {"name": name, "status": "QUEUED", "id": None, "provider": None}
    kept = [n for n in sorted(rows) if (status is None or rows[n].get("status") == status)
            and (destroyed or status is not None or rows[n].get("status") != "DELETE_COMPLETE")]
    # the page's rows only, each template once: `public` costs a millisecond a call, and a list may
    # have thousands of deployments, most made from a few catalogue entries
    shown: dict[str, str | None] = {}
    for n in kept[offset:offset + limit]:
        t = str(rows[n].get("template") or "")
        if t not in shown:
            shown[t] = public(t).rsplit("/", 1)[-1] or None
    items = [{**rows[n], "owner": _owner(visible[n]), "group": visible[n].group if visible[n] else None,
              "template": shown[str(rows[n].get("template") or "")]} for n in kept[offset:offset + limit]]
    return {"total": len(kept), "offset": offset, "items": items}


def _owner(acc: Any) -> str:
    return acc.owner_name if acc is not None else "(command line)"


def catalogue(cfg: Any) -> list[dict[str, Any]]:
    """The templates this server offers, each with its inputs described."""
    from dodas.services import catalogue as cat
    return cat.entries(cfg.catalogue)


def catalogue_entry(cfg: Any, name: str) -> dict[str, Any]:
    from dodas.services import catalogue as cat
    return cat.describe(cat.path_of(cfg.catalogue, name))


def owner_of(name: str) -> str:
    """Who asked for the deployment (the command line's have no owner on the server)."""
    return _owner(queue.access(name))


def view(name: str) -> dict[str, Any]:
    """The deployment as `dodas status --json` shows it, with its pending work.
    The work is read first: work that ends between the two reads then shows
    with the status it left (a caller waiting for no work sees the final
    status), never a status of before with no work."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    work = [work_view(i) for i in queue.items(deployment_name=name, limit=20) if i.status in queue.ACTIVE]
    try:
        out = read.status(name)
    except NotFoundError:  # asked for, not started yet
        out = {"name": name, "status": "QUEUED", "instances": [], "attempts": []}
    out["work"] = work
    return out


def events(name: str, after: int = 0, node: str | None = None, tail: int | None = None,
           instances: list[str] | None = None) -> list[dict[str, Any]]:
    """Events after id `after`, of one node's instances, of the `instances` named
    (a machine and what it hosts) or all, the last `tail` only when given."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    try:
        return read.events(name, node=node or None, after_id=after, tail=tail, instances=instances)[1]
    except NotFoundError:
        return []


def log_events(name: str, after: int = 0, which: str | None = None, tail: int | None = None,
               since: Any = None) -> list[dict[str, Any]]:
    """What `dodas logs` shows, locally or through a server: events after id
    `after`, of a node's instances (NODE) or one instance (NODE[i]), since a time,
    the last `tail`. An unknown NODE is an error naming the deployment's nodes
    (read.event_filter); a deployment asked for and not started yet has none."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    try:
        found = read.event_filter(name, which or None)
        return read.events(name, after_id=after, tail=tail, since=since, **found)[1]
    except NotFoundError:
        return []


def secret_text(cfg: Any, caller: Caller, name: str, what: str) -> str:
    """A deployment's kubeconfig or spark-defaults.conf (`what`): credentials of
    the deployment, so only for those who may operate it, as sensitive outputs."""
    from dodas.services import read

    acc = tenancy.readable(caller, name)
    if not tenancy.can_operate(caller, acc, cfg):
        raise Refused(403, f"the {what} of a deployment holds its credentials: it is given only to those who may "
                      "operate it")
    return read.kubeconfig(name) if what == "kubeconfig" else read.spark_conf(name)


def refresh(cfg: Any, caller: Caller, name: str) -> dict[str, Any]:
    """`dodas refresh` for a caller who may operate the deployment: the provider is
    asked, the drift recorded under the deployment's lock (409 while a worker holds it)."""
    from dodas.services.refresh import refresh as do_refresh

    tenancy.operable(cfg, caller, name)
    return do_refresh(name).to_json()


def outputs(cfg: Any, caller: Caller, name: str, show_secrets: bool = False) -> dict[str, Any]:
    from dodas.services import read

    acc = tenancy.readable(caller, name)
    if show_secrets and not tenancy.can_operate(caller, acc, cfg):
        raise Refused(403, "sensitive outputs are shown only to those who may operate the deployment")
    return read.outputs(name, show_secrets=show_secrets)


def work_view(item: Any) -> dict[str, Any]:
    from dodas.services.answers import public

    return {"id": item.id, "operation": item.operation, "status": item.status,
            "error": public(item.error) if item.error else item.error,
            "created_at": item.created_at.isoformat() if item.created_at else None,
            "started_at": item.started_at.isoformat() if item.started_at else None}


def states(caller: Caller, name: str) -> dict[str, Any]:
    """Status, instances' states and attempts from the state alone (what a page
    following the deployment polls); a deployment not started yet is QUEUED."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    tenancy.readable(caller, name)
    recent = queue.items(deployment_name=name, limit=20)  # first, as view() reads them
    try:
        out = read.states(name)
    except NotFoundError:
        out = {"name": name, "status": "QUEUED", "reason": None, "provider": None, "instances": [], "attempts": [],
               "planned": planned(recent)}
    out["work"] = waiting([work_view(i) for i in recent])
    ahead = {w["id"]: w for w in out["work"]}
    out["requests"] = [ahead.get(i.id) or work_view(i) for i in recent[:5]]
    return out


def planned(recent: list[Any]) -> int:
    """How many instances the queued creation of a deployment makes, as its plan
    said when it was asked for: a worker may be on it before it recorded the
    deployment (it plans, picks a provider), and a page must not say "0 of 0"
    meanwhile. 0 when no creation is queued (or it was queued without the count)."""
    for item in recent:
        if item.operation == "apply" and item.payload.get("create") and item.status in queue.ACTIVE:
            return int(item.payload.get("planned_instances") or 0)
    return 0


def elastic(caller: Caller, name: str) -> dict[str, Any] | None:
    """An elastic deployment's policy, each worker's state and the autoscaler's last
    decisions (the workload read once, bounded), as `dodas status` shows them; None
    for a deployment without a policy. Not part of `states`, which pages poll."""
    from dodas.services import autoscale, read
    from dodas.state.store import NotFoundError

    tenancy.readable(caller, name)
    try:
        return autoscale.summary(name, read.states(name)["instances"])
    except NotFoundError:
        return None


def topology(caller: Caller, name: str) -> dict[str, Any] | None:
    """The deployment's nodes and what each needs; None before a worker made it."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    tenancy.readable(caller, name)
    try:
        return read.topology(name)
    except NotFoundError:
        return None


def settings(caller: Caller, name: str) -> dict[str, Any]:
    """What the deployment's forms show: its template's inputs (as the catalogue
    describes them), the current values of those that are not secret, and the
    nodes that scale with their current counts."""
    from dodas.model.template import Template
    from dodas.services import recorded, scaling
    from dodas.state.store import NotFoundError, Store

    tenancy.readable(caller, name)
    try:
        template = Template.read(str(recorded.stored_template_of(name)))
    except NotFoundError:
        return {"inputs": [], "values": {}, "scalable": {}}
    dep = Store().require(name)
    values = {k: v for k, v in dep.inputs.items() if not (k in template.inputs and template.inputs[k].secret)}
    return {"inputs": [i.to_json() for i in template.inputs.values()], "values": values,
            "scalable": scaling.counts(template, dep.inputs)}


def infra_name(caller: Caller, name: str) -> str | None:
    """The template's `metadata.infra_name` (IM's name for a TOSCA
    infrastructure), if it has one: read as every template is (bounded)."""
    from dodas.errors import TemplateError
    from dodas.model.template import Template

    try:
        meta = Template.parse(template(caller, name), "template").metadata
    except (Refused, TemplateError):
        return None
    found = meta.get("infra_name") if isinstance(meta, dict) else None
    return str(found) if isinstance(found, (str, int)) else None


def template(caller: Caller, name: str) -> str:
    """The deployment's template text, as it was sent (of a creation not started
    yet: the text its queued work carries)."""
    from dodas.state.store import Store

    tenancy.readable(caller, name)
    dep = Store().get(name)
    if dep is not None:
        return dep.template_text
    for item in queue.items(deployment_name=name, limit=20):
        if item.operation == "apply" and "template_text" in item.payload:
            return item.payload["template_text"]
    raise Refused(404, f'deployment "{name}" has no template')


def sent_counts(caller: Caller, name: str, text: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """The count a template sent to IM's API asks of each node that has one, with
    its removal_list: a count read from an input is the deployment's value of
    that input, as `dodas scale` left it, not the sent template's default."""
    from dodas.services import scaling
    from dodas.state.store import Store

    tenancy.readable(caller, name)
    dep = Store().get(name)
    return scaling.sent_counts(text, dict(dep.inputs) if dep is not None else {})


def queue_depth() -> int:
    """Work not finished yet: the health check's and the metrics' backlog."""
    return queue.depth()


def deployment_counts() -> dict[str, int]:
    """Deployments by status, for the metrics."""
    from dodas.state.store import Store

    counts: dict[str, int] = {}
    for d in Store().list():
        counts[d.status] = counts.get(d.status, 0) + 1
    return counts


def waiting(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each unfinished request of a deployment with what it waits for: a queued
    one behind an earlier request of the same deployment waits for that one;
    otherwise for a free worker, `position` being its place among all queued
    work (1: next). A running one says since when (its `started_at`)."""
    queued = sorted(i.id for i in queue.items(status="queued", limit=1000))
    running = len(queue.items(status="running", limit=1000))
    active = sorted((r for r in requests if r["status"] in queue.ACTIVE), key=lambda r: r["id"])
    out = []
    for n, r in enumerate(active):
        r = dict(r)
        if r["status"] == "queued":
            r["position"] = sum(1 for i in queued if i <= r["id"])
            if n and active[n - 1]["status"] in queue.ACTIVE:
                r["waits_for"] = f"the {active[n - 1]['operation']} requested before it to finish"
            else:
                r["waits_for"] = (f"a free worker ({running} busy, {r['position'] - 1} request"
                                  f"{'' if r['position'] == 2 else 's'} ahead)")
        out.append(r)
    return out


def about(caller: Caller, name: str) -> dict[str, Any]:
    """What a deployment was made from, for its page: the template's display
    name (or file name), when it was made, and its inputs with the secret ones
    masked. Empty for a creation still queued."""
    from dodas.model.template import Template
    from dodas.services.answers import public
    from dodas.state.store import Store

    tenancy.readable(caller, name)
    dep = Store().get(name)
    if dep is None:  # asked for, not started yet: what its queued request carries
        asked = [i for i in queue.items(deployment_name=name, limit=20) if i.operation == "apply"]
        try:
            meta = Template.parse(template(caller, name), "template").metadata
        except Exception:  # noqa: BLE001 - a page for it all the same
            meta = {}
        shown = (meta if isinstance(meta, dict) else {}).get("display_name")
        made = asked[-1].created_at if asked else None
        return {"template": str(shown) if shown else None, "created_at": made.isoformat() if made else None,
                "inputs": {}}
    try:
        tpl = Template.parse(dep.template_text, "template")
        secret = {k for k, i in tpl.inputs.items() if i.secret}
        meta = tpl.metadata if isinstance(tpl.metadata, dict) else {}
    except Exception:  # noqa: BLE001 - a template that no longer parses still has a page
        secret, meta = set(dep.inputs), {}
    shown = meta.get("display_name") or public(str(dep.template_path or "")).rsplit("/", 1)[-1]
    return {"template": str(shown), "created_at": dep.created_at.isoformat() if dep.created_at else None,
            "inputs": {k: ("********" if k in secret else v) for k, v in sorted(dep.inputs.items())}}


def node_names(caller: Caller, name: str) -> list[str]:
    """The deployment's node names, known from the moment it is asked for: its
    topology once a worker made it, before that its queued template's nodes."""
    from dodas.errors import DodasError
    from dodas.model.template import Template

    topo = topology(caller, name)
    if topo is not None:
        return sorted(n["name"] for n in topo["nodes"])
    try:
        data = Template.parse(template(caller, name), "template").source.data
    except (Refused, DodasError):
        return []
    nodes = (data.get("topology_template") or {}).get("node_templates") if isinstance(data, dict) else None
    return sorted(str(n) for n in nodes) if isinstance(nodes, dict) else []


def machines(caller: Caller, name: str) -> list[dict[str, Any]]:
    """Each machine of the deployment, as its page lists them: its instance, state,
    addresses, the provider that made it and the provider's id for it, its cores
    and memory as the provider reported them, and the node instances it hosts
    (from the state alone: one read; empty before a worker made any)."""
    from dodas import paths
    from dodas.state import reads
    from dodas.state.store import NotFoundError

    tenancy.readable(caller, name)
    try:
        with reads.reading() as r:
            dep = r.deployment(name)
            rows = r.instances(dep.id)
    except NotFoundError:
        return []
    hosted: dict[tuple[str, int], list[str]] = {}
    for (node, index), row in sorted(rows.items()):
        on = (row.attributes or {}).get("_compute") if row.kind != "compute" else None
        if on:
            hosted.setdefault((on[0], int(on[1])), []).append(paths.instance_id(node, index))
    out = []
    for (node, index), row in sorted(rows.items()):
        if row.kind != "compute":
            continue
        attrs = row.attributes or {}
        facts = attrs.get("facts") or {}
        out.append({"id": paths.instance_id(node, index), "node": node, "state": row.state, "error": row.error,
                    "provider": dep.provider, "provider_id": row.provider_id or attrs.get("provider_id"),
                    "public_address": attrs.get("public_address"), "private_address": attrs.get("private_address"),
                    "cores": _number(facts.get("num_cpus")), "mem_mib": _number(facts.get("mem_mib")),
                    "hosts": hosted.get((node, index), [])})
    return out


def _number(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
