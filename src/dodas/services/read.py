"""Read-only views of deployments: list, status, outputs, logs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.engine.context import RunContext, UnresolvedError
from dodas.model.deployment import Instance
from dodas.model.values import is_deferred
from dodas.plan.plan import MASK, Plan
from dodas.providers import get_provider
from dodas.providers.base import Machine
from dodas.services import plan_given
from dodas.state.models import Deployment
from dodas.state.store import Store
from dodas.tosca.inputs import GivenInput


def list_deployments() -> list[dict[str, Any]]:
    out = []
    for d in Store().list():
        out.append({"name": d.name, "id": d.id, "status": d.status, "provider": d.provider,
                    "template": d.template_path, "created_at": d.created_at.isoformat(),
                    "updated_at": d.updated_at.isoformat(), "locked_by": d.lock_owner})
    return out


def stored_plan(dep: Deployment) -> Plan:
    """Re-plan a deployment from the template and inputs kept in the state."""
    original = Path(dep.template_path)
    path = original
    try:
        if original.read_text(encoding="utf-8") != dep.template_text:
            raise OSError
    except OSError:
        path = paths.data_dir() / "deployments" / dep.id / "template.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dep.template_text, encoding="utf-8")
    given = {k: GivenInput(v, "<stored inputs>", 1, 1) for k, v in dep.inputs.items()}
    return plan_given(str(path), given, offline=True)


def _context(store: Store, dep: Deployment, plan: Plan) -> RunContext:
    ctx = RunContext(plan.model, dep.id, dep.name)
    for (node, index), row in store.instances(dep.id).items():
        inst = Instance(node, index)
        if row.kind == "compute" and row.attributes.get("provider_id"):
            ctx.machines[inst] = Machine.from_attributes(row.attributes)
        else:
            ctx.attributes[inst] = {k: v for k, v in row.attributes.items() if not k.startswith("_")}
        if row.secrets:
            ctx.secrets[inst] = dict(row.secrets)
    return ctx


def outputs(name: str, show_secrets: bool = False) -> dict[str, dict[str, Any]]:
    store = Store()
    dep = store.require(name)
    plan = stored_plan(dep)
    ctx = _context(store, dep, plan)
    out = {}
    for o in plan.model.outputs.values():
        try:
            value = ctx.evaluate(o.value, None)
            known = True
        except UnresolvedError:
            value, known = None, False
        if o.sensitive and not show_secrets and known:
            value = MASK
        out[o.name] = {"value": value, "known": known, "sensitive": o.sensitive, "description": o.description}
    return out


def status(name: str) -> dict[str, Any]:
    store = Store()
    dep = store.require(name)
    rows = store.instances(dep.id)
    provider = get_provider(dep.provider)
    machines = {k: Machine.from_attributes(r.attributes) for k, r in rows.items()
                if r.kind == "compute" and r.attributes.get("provider_id")}
    instances = []
    for (node, index), row in sorted(rows.items()):
        item: dict[str, Any] = {"id": f"{node}[{index}]", "node": node, "index": index, "kind": row.kind,
                                "state": row.state, "error": row.error}
        if row.kind == "compute":
            item["address"] = row.attributes.get("private_address") or row.attributes.get("public_address")
            item["provider_id"] = row.provider_id
        services = {}
        compute = row.attributes.get("_compute")
        machine = machines.get(tuple(compute)) if compute else None
        for sname, svc in (row.attributes.get("services") or {}).items():
            pid = int(svc.get("pid", 0) or 0)
            alive = asyncio.run(provider.processes_alive(machine, [pid])) if machine and pid else None
            services[sname] = {"pid": pid, "pgid": int(svc.get("pgid", 0) or 0), "log": svc.get("log"),
                               "alive": None if alive is None else bool(alive.get(pid))}
        if services:
            item["services"] = services
        instances.append(item)
    attempts = [{"number": a.number, "provider": a.provider, "status": a.status, "error": a.error,
                 "started_at": a.started_at.isoformat(),
                 "ended_at": a.ended_at.isoformat() if a.ended_at else None} for a in store.attempts(dep.id)]
    return {"name": dep.name, "id": dep.id, "status": dep.status, "reason": dep.status_reason,
            "attempts": attempts,
            "provider": dep.provider, "template": dep.template_path, "inputs_sha256": dep.inputs_sha256,
            "template_sha256": dep.template_sha256, "locked_by": dep.lock_owner,
            "updated_at": dep.updated_at.isoformat(), "instances": instances}


def events(name: str, node: str | None = None, after_id: int = 0) -> tuple[str, list[dict[str, Any]]]:
    store = Store()
    dep = store.require(name)
    evs = store.events(dep.id, node=node, after_id=after_id)
    return dep.id, [{"id": e.id, "time": e.time.isoformat(), "instance": e.instance, "phase": e.phase,
                     "level": e.level, "message": e.message} for e in evs]


def deferred_outputs(plan: Plan) -> list[str]:
    return [o.name for o in plan.model.outputs.values() if is_deferred(o.value)]


def providers(check: bool = False) -> list[dict[str, Any]]:
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
    import re

    from dodas.errors import DodasError

    store = Store()
    dep = store.require(name)
    plan = stored_plan(dep)
    ctx = _context(store, dep, plan)
    for inst in sorted(ctx.secrets, key=str):
        conf = ctx.secrets[inst].get("kubeconfig")
        if isinstance(conf, str) and conf:
            machine = ctx.machine_of(inst)
            if machine is not None and machine.public_address:
                conf = re.sub(r"(server:\s*https://)[^:/\s]+", r"\g<1>" + machine.public_address, conf)
            return conf
    raise DodasError(f'deployment "{name}" has no Kubernetes front end with a kubeconfig (yet)')
