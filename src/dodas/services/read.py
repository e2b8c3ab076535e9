"""Read-only views of deployments: list, status, outputs, logs.

`list`, `status` and `outputs` read through `state/reads.py` (one read-only
connection, no ORM) and import the provider, the engine's context or the plan
only when a view needs them (services to ask about, outputs to evaluate), so
that a read costs little more than Python's start and the query.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from dodas import paths
from dodas.errors import DodasError
from dodas.redact import MASK
from dodas.state import reads

if TYPE_CHECKING:
    from dodas.plan.plan import Plan

#: DeploymentStatus.DELETE_COMPLETE (engine/states.py), without importing the engine for it
DELETE_COMPLETE = "DELETE_COMPLETE"


def list_deployments(include_deleted: bool = False, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Deployments (of `names`, or all), oldest first; destroyed ones
    (DELETE_COMPLETE) only with `include_deleted`."""
    out = []
    with reads.reading() as r:
        rows = r.summaries(names)
    for d in rows:
        if d.status == DELETE_COMPLETE and not include_deleted:
            continue
        out.append({"name": d.name, "id": d.id, "status": d.status, "provider": d.provider,
                    "template": d.template_path, "created_at": d.created_at.isoformat(),
                    "updated_at": d.updated_at.isoformat(), "locked_by": d.lock_owner})
    return out


def deployment_names(prefix: str = "", include_deleted: bool = False) -> list[str]:
    """Names starting with `prefix`, for shell completion. Reads an existing state
    only: a home without one gets no database made for a completion."""
    if not reads.has_state():
        return []
    return [d["name"] for d in list_deployments(include_deleted) if d["name"].startswith(prefix)]


def outputs(name: str, show_secrets: bool = False, plan: Plan | None = None) -> dict[str, dict[str, Any]]:
    """The outputs, evaluated with what the state recorded. `plan`: the plan just
    applied (up), which saves planning the stored template again; without one,
    the outputs' frame kept by the last plan of these template and inputs
    (services/outputsframe.py), else the stored template planned again."""
    from dodas.model.attributes import UnresolvedError
    from dodas.services import outputsframe

    with reads.reading() as r:
        dep = r.deployment(name)
        rows = r.instances(dep.id)
    model = None if plan is not None else outputsframe.load(dep)
    if model is None:
        if plan is None:
            from dodas.services.recorded import stored_plan
            from dodas.state.store import Store

            plan = stored_plan(Store().require(name))
        outputsframe.save(dep, plan)
        model = plan.model
    ctx = outputsframe.Recorded.from_rows(model, rows)
    out = {}
    for o in model.outputs.values():
        try:
            value = ctx.evaluate(o.value, None)
            known = True
        except UnresolvedError:
            value, known = None, False
        if o.sensitive and not show_secrets and known:
            value = MASK
        out[o.name] = {"value": value, "known": known, "sensitive": o.sensitive, "description": o.description}
    return out


class UnknownOutputError(DodasError):
    """`dodas outputs NAME KEY` of a KEY the deployment does not have, or cannot show."""


def output(name: str, key: str, show_secrets: bool = False, source: Any = None) -> dict[str, Any]:
    """One output: {"name", "value", "known", "sensitive", "description"}. An unknown
    key names the known ones (and the closest); a sensitive one needs
    `show_secrets`; one not known yet (its instance is not made) is an error, so
    that `$(dodas outputs NAME KEY --raw)` never yields a placeholder. `source`
    (a server's client) answers instead of the local state when given."""
    import difflib

    outs = source.outputs(name, show_secrets) if source is not None else outputs(name, show_secrets=show_secrets)
    if key not in outs:
        hint = difflib.get_close_matches(key, list(outs), n=1)
        known = f"its outputs are: {', '.join(outs)}" if outs else "it has no outputs"
        raise UnknownOutputError(f'deployment "{name}" has no output "{key}"'
                                 + (f'; did you mean "{hint[0]}"?' if hint else "") + f" ({known})")
    o = outs[key]
    if o["sensitive"] and not show_secrets:
        raise UnknownOutputError(f'output "{key}" of "{name}" is sensitive: add --show-secrets to print it '
                                 f"(dodas outputs {name} {key} --show-secrets)")
    if not o["known"]:
        raise UnknownOutputError(f'output "{key}" of "{name}" is not known yet (the instances it reads are not '
                                 f"made: see dodas status {name})")
    return {"name": key, **o}


def status(name: str) -> dict[str, Any]:
    """A deployment as it is now: its state, its lock and whether the lock's holder
    still runs, its attempts, its instances and whether each recorded service is
    alive (by pid and start time). Read-only: what it finds out (a dead lock holder,
    attempts its death interrupted) is shown, and written by the next up/destroy."""
    with reads.reading() as r:
        dep = r.deployment(name)
        rows = r.instances(dep.id)
        attempt_rows = r.attempts(dep.id)
    machines = {k: r.attributes for k, r in rows.items() if r.kind == "compute" and r.attributes.get("provider_id")}
    instances = []
    recorded: dict[tuple[str, int], list[tuple[str, Any]]] = {}
    for (node, index), row in sorted(rows.items()):
        item: dict[str, Any] = {"id": paths.instance_id(node, index), "node": node, "index": index, "kind": row.kind,
                                "state": row.state, "error": row.error}
        if row.kind == "compute":
            item["address"] = row.attributes.get("private_address") or row.attributes.get("public_address")
            # each address, and the login user and port (never the key file): IM's VM description gives them
            item.update({k: row.attributes.get(k) for k in ("public_address", "private_address", "ssh_user",
                                                             "ssh_port")})
            item["provider_id"] = row.provider_id
        services = {}
        compute = row.attributes.get("_compute")
        if row.kind != "compute" and compute:  # the machine it runs on: IM's per-VM log collects them
            item["host"] = paths.instance_id(*compute)
        for sname, svc in (row.attributes.get("services") or {}).items():
            ref = _process_ref(svc)
            svc = svc if isinstance(svc, dict) else {}
            services[sname] = {"pid": ref.pid if ref else 0, "start": ref.start if ref else None,
                               "pgid": _int(svc.get("pgid")), "log": svc.get("log"), "alive": None}
            if ref is not None and compute and tuple(compute) in machines:
                recorded.setdefault(tuple(compute), []).append((f"{node}[{index}]/{sname}", ref))
        if services:
            item["services"] = services
        instances.append(item)
    # the provider (its configuration read, its client built) only when there are services to ask about
    answers = _ask_alive(dep.provider, machines, recorded) if recorded else {}
    degraded: dict[str, list[str]] = {}
    for item in instances:
        for sname, svc in (item.get("services") or {}).items():
            svc["alive"] = answers.get(f"{item['id']}/{sname}")
            if svc["alive"] is False:
                degraded.setdefault(item["id"], []).append(sname)
    holder = _lock_view(dep)
    attempts = []
    for a in attempt_rows:
        row_out: dict[str, Any] = {"number": a.number, "provider": a.provider, "status": a.status,
                                   "error": a.error, "started_at": a.started_at.isoformat(),
                                   "ended_at": a.ended_at.isoformat() if a.ended_at else None}
        if a.status == "running" and holder is not None and holder["alive"] is False:
            # its dodas died: say so; the next up or destroy records it (status writes nothing)
            row_out.update(status="interrupted", recorded_status="running",
                           error=f"its dodas died (pid {holder['pid']} on {holder['host']}); the next up or "
                                 "destroy records it")
        attempts.append(row_out)
    elastic = None
    if dep.elastic:  # the autoscaler's view (a plan, the policy) only for a deployment that has one
        from dodas.services import autoscale
        elastic = autoscale.summary(name, instances)
        for n in (elastic or {}).get("nodes") or []:  # a worker the workload lost: degraded, as a dead service
            if n["lost"]:
                degraded.setdefault(n["id"], []).append(f"its worker ({n['workload_state']} in the "
                                                        f"{elastic['policy']['workload']} workload)")
    from dodas.model import managed
    return {"name": dep.name, "id": dep.id, "status": dep.status, "reason": dep.status_reason,
            # counts the autoscaler manages (a template's fixed count under an elastic policy), by node
            "managed_counts": {k[len(managed.PREFIX):]: v for k, v in (dep.inputs or {}).items() if managed.is_key(k)},
            "degraded": degraded, "attempts": attempts, "elastic": elastic,
            "provider": dep.provider, "template": dep.template_path, "inputs_sha256": dep.inputs_sha256,
            "template_sha256": dep.template_sha256, "locked_by": dep.lock_owner, "lock": holder,
            "updated_at": dep.updated_at.isoformat(), "instances": instances}


def _process_ref(record: Any) -> Any:
    from dodas.providers.base import ProcessRef
    return ProcessRef.from_record(record)


def _ask_alive(provider_name: str, machines: dict[tuple[str, int], dict[str, Any]],
               recorded: dict[tuple[str, int], list[tuple[str, Any]]]) -> dict[str, bool | None]:
    """Whether each recorded service runs, asking the deployment's provider."""
    import asyncio

    from dodas.providers import get_provider
    from dodas.providers.base import Machine
    from dodas.services.recorded import alive_by_machine

    hosts = {k: Machine.from_attributes(a) for k, a in machines.items()}
    return asyncio.run(alive_by_machine(get_provider(provider_name), hosts, recorded))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _lock_view(dep: Any) -> dict[str, Any] | None:
    """The lock's holder and whether it still runs (None: on another host, which cannot be checked)."""
    if not dep.lock_owner:
        return None
    from dodas.state import lock

    h = lock.holder(dep.lock_owner)
    return {"owner": dep.lock_owner, "host": h.host, "pid": h.pid, "alive": h.alive,
            "since": dep.lock_acquired_at.isoformat() if dep.lock_acquired_at else None}


def _aware(t: datetime) -> datetime:
    """A stored time with its zone (SQLite keeps UTC without saying so)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def parse_since(text: str) -> datetime:
    """`--since`: a duration before now ("10m", "1h30m", "90") or an ISO 8601
    timestamp ("2026-12-04T01:00:00+01:00"; without an offset, this machine's
    local time). An error says which forms are understood."""
    from dodas.durations import HOW, DurationError, parse_duration

    raw = text.strip()
    try:
        return datetime.now(timezone.utc) - timedelta(seconds=parse_duration(raw, "--since"))
    except DurationError:
        pass
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise DurationError(f'--since: "{text}" is neither a duration ({HOW}) nor an ISO 8601 time '
                            '("2026-12-04T10:00:00+01:00")') from None
    return when.astimezone(timezone.utc)  # a naive time is local time


def event_filter(name: str, which: str | None) -> dict[str, str]:
    """The Store.events filter for a NODE or NODE[i] argument; an unknown one is an
    error naming the nodes and instances the deployment has."""
    from dodas.services.recorded import stored_plan
    from dodas.state.store import Store


    import difflib

    if not which:
        return {}
    store = Store()
    dep = store.require(name)
    instances = store.event_instances(dep.id) | {paths.instance_id(n, i) for n, i in store.instances(dep.id)}
    nodes = {i.split("[", 1)[0] for i in instances}
    if which not in nodes and which not in instances:
        try:  # nodes of the template that have no instance or event yet
            nodes |= set(stored_plan(dep).model.nodes)
        except DodasError:
            pass
    if which in nodes:
        return {"node": which}
    if which in instances:
        return {"instance": which}
    hint = difflib.get_close_matches(which, sorted(nodes | instances), n=1)
    raise DodasError(f'deployment "{name}" has no node or instance "{which}"'
                     + (f'; did you mean "{hint[0]}"?' if hint else "")
                     + (f" (its nodes: {', '.join(sorted(nodes))}; instances: "
                        f"{', '.join(sorted(instances)) or 'none yet'})" if nodes else " (it has no nodes)"))


def events(name: str, node: str | None = None, after_id: int = 0, *, instance: str | None = None,
           since: datetime | None = None, tail: int | None = None,
           instances: list[str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """A deployment's events, oldest first; each "time" is ISO 8601 with its offset (UTC)."""
    from dodas.state.store import Store


    if tail is not None and tail < 0:
        from dodas.errors import UsageError
        raise UsageError(f"--tail must be 0 or more (got {tail})")
    store = Store()
    dep = store.require(name)
    evs = store.events(dep.id, node=node, after_id=after_id, instance=instance,
                       since=since.astimezone(timezone.utc).replace(tzinfo=None) if since and _naive_db() else since,
                       tail=tail, instances=instances)
    return dep.id, [{"id": e.id, "time": _aware(e.time).isoformat(), "instance": e.instance, "phase": e.phase,
                     "level": e.level, "message": e.message} for e in evs]


def _naive_db() -> bool:
    """SQLite compares the stored UTC times as text without an offset."""
    import os
    return (os.environ.get("DODAS_DB_URL") or "sqlite").startswith("sqlite")


def providers(check: bool = False) -> list[dict[str, Any]]:
    import asyncio

    from dodas.providers import build, config
    from dodas.providers.base import ProviderError

    out = []
    for cfg in config.load():
        row: dict[str, Any] = {"name": cfg.name, "type": cfg.type, "rank": cfg.rank,
                               "credentials": cfg.describe_credentials(), "image_hosts": cfg.image_hosts}
        if check:
            try:
                message = asyncio.run(build(cfg).check())
                row["check"] = {"ok": True, "message": message}
            except ProviderError as exc:
                row["check"] = {"ok": False, "message": exc.message}
        out.append(row)
    return out


def kubeconfig(name: str) -> str:
    """The admin kubeconfig of a deployment's Kubernetes front end, with the API
    server at the front end's public address (what a user outside the cloud can reach)."""
    from dodas.engine.context import RunContext
    from dodas.services.cluster_access import kubeconfig_of
    from dodas.services.recorded import stored_plan
    from dodas.state.store import Store

    store = Store()
    dep = store.require(name)
    plan = stored_plan(dep)
    conf = kubeconfig_of(RunContext.from_rows(plan.model, dep.id, dep.name, store.instances(dep.id)))
    if conf is None:
        raise DodasError(f'deployment "{name}" has no Kubernetes front end with a kubeconfig (yet)')
    return conf



def spark_conf(name: str) -> str:
    """A spark-defaults.conf for Spark applications outside the deployment: the
    master URL (at the master's public address) and the cluster's secret. Given
    to a client through SPARK_CONF_DIR, the secret never shows on a command line."""
    from dodas.engine.context import RunContext
    from dodas.services.recorded import stored_plan
    from dodas.state.store import Store


    store = Store()
    dep = store.require(name)
    plan = stored_plan(dep)
    ctx = RunContext.from_rows(plan.model, dep.id, dep.name, store.instances(dep.id))
    for inst in sorted(ctx.secrets, key=str):
        node = plan.model.nodes.get(inst.node)
        secret = ctx.secrets[inst].get("secret")
        url = ctx.attributes.get(inst, {}).get("master_url")
        if node is None or not node.derives_from("tosca.nodes.dodas.Spark.Master") or not secret or not url:
            continue
        machine = ctx.machine_of(inst)
        if machine is not None and machine.public_address:
            url = "spark://" + machine.public_address + ":" + str(url).rsplit(":", 1)[1]
        return (f"# Spark deployment {name} (dodas spark-conf): keep this file private\n"
                f"spark.master {url}\nspark.authenticate true\nspark.authenticate.secret {secret}\n")
    raise DodasError(f'deployment "{name}" has no Spark master with a secret (yet)')


def states(name: str) -> dict[str, Any]:
    """A deployment's status and its instances' states from the state alone: what
    a page following a deployment asks for twice a second (status() also asks
    the provider whether each service runs)."""
    with reads.reading() as r:
        dep = r.deployment(name)
        rows = r.instances(dep.id)
        attempt_rows = r.attempts(dep.id)
    attempts = [{"number": a.number, "provider": a.provider, "status": a.status, "error": a.error,
                 "started_at": a.started_at.isoformat(), "ended_at": a.ended_at.isoformat() if a.ended_at else None}
                for a in attempt_rows]
    return {"name": dep.name, "status": dep.status, "reason": dep.status_reason, "provider": dep.provider,
            "updated_at": dep.updated_at.isoformat(), "attempts": attempts,
            "instances": [{"id": paths.instance_id(node, index), "node": node, "index": index, "kind": row.kind,
                           "state": row.state, "error": row.error} for (node, index), row in sorted(rows.items())]}


_topologies: dict[tuple[str, str, str], dict[str, Any]] = {}


def topology(name: str) -> dict[str, Any]:
    """The deployment's nodes (type, instance count, host) and what each needs
    (requirements, attributes read, implicit order), from its stored template and
    inputs; kept per template and inputs, since re-planning costs tens of ms."""
    from dodas.services.recorded import stored_plan
    from dodas.state.store import Store


    from dodas.plan import graph

    dep = Store().require(name)
    key = (dep.id, dep.template_sha256 or "", dep.inputs_sha256 or "")
    if key not in _topologies:
        plan = stored_plan(dep)
        counts: dict[str, int] = {}
        for inst in plan.instances:
            counts[inst.node] = counts.get(inst.node, 0) + 1
        nodes = [{"name": n.name, "type": n.type, "instances": counts.get(n.name, 0), "host": n.host}
                 for n in plan.model.nodes.values()]
        edges = [[e.source, e.target, e.why] for es in graph.node_edges(plan.model).values() for e in es]
        if len(_topologies) > 256:
            _topologies.clear()
        _topologies[key] = {"nodes": nodes, "edges": edges}
    return _topologies[key]
