"""Human-readable rendering of plans and deployments (the --json forms live with the data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from dodas.model.deployment import MANAGED_COUNT_PREFIX
from dodas.model.indexes import PREFIX as INDEXES_PREFIX
from dodas.model.values import AttrRef, Concat, Join, Token, is_deferred
from dodas.redact import MASK

if TYPE_CHECKING:  # a plan is rendered only by the commands that made one
    from dodas.plan.plan import Plan


def expr(value: Any) -> str:
    """A deferred value as the user would write it, compactly."""
    if isinstance(value, AttrRef):
        return "get_attribute(" + ", ".join(str(x) for x in (value.node, value.attribute, *value.path)) + ")"
    if isinstance(value, Concat):
        return "concat(" + ", ".join(expr(p) for p in value.parts) + ")"
    if isinstance(value, Join):
        return f"join([{', '.join(expr(p) for p in value.parts)}], {value.delimiter!r})"
    if isinstance(value, Token):
        return f"token({expr(value.value)}, {value.chars!r}, {value.index})"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _compute(c: Any) -> str:
    bits = []
    if c.instance_type:
        bits.append(f"type {c.instance_type}")
    if c.num_cpus:
        bits.append(f"{c.num_cpus} cpu")
    if c.mem_mib:
        bits.append(f"{c.mem_mib} MiB")
    if c.num_gpus:
        bits.append(f"{c.num_gpus} gpu")
    bits.append(f"image {c.image or '(provider default)'}")
    bits.append(f"network {c.network}")
    if c.ports:
        bits.append("ports " + ",".join(f"{p.source or p.target}/{p.protocol}" for p in c.ports))
    return ", ".join(bits)


def plan(p: Plan) -> None:
    m = p.model
    computes = len(p.compute_instances())
    typer.echo(f"Plan for {m.template_path}: {len(p.instances)} instances "
               f"({computes} machines) in {len(p.waves)} waves")
    declared = {k: v for k, v in m.inputs.items()  # counts shown as elastic, indexes as instances
                if not k.startswith((MANAGED_COUNT_PREFIX, INDEXES_PREFIX))}
    if declared:
        shown = ", ".join(f"{k}={MASK if k in m.secret_inputs else v!r}" for k, v in sorted(declared.items()))
        typer.echo(f"Inputs: {shown}")
    for n, wave in enumerate(p.waves, start=1):
        typer.echo(f"\nWave {n}:")
        for inst in wave:
            pi = p.instances[inst]
            line = f"  {pi.id:<28} {pi.node.type}"
            if pi.host:
                line += f"  on {pi.host.id}"
            typer.echo(line)
            if pi.node.compute:
                typer.echo(f"      {_compute(pi.node.compute)}")
            others = sorted({d.node for d in pi.depends_on if not pi.host or d != pi.host})
            if others:
                typer.echo(f"      after: {', '.join(others)}")
    deferred = [d for d in p.deferred() if d["instance"]]
    if deferred:
        typer.echo("\nDeferred to run time:")
        seen = set()
        for inst in p.instances.values():
            for k, v in inst.node.properties.items():
                if is_deferred(v) and (inst.node.name, k) not in seen:
                    seen.add((inst.node.name, k))
                    typer.echo(f"  {inst.node.name}.{k} = {expr(v)}")
    if m.outputs:
        typer.echo("\nOutputs:")
        for o in m.outputs.values():
            val = expr(o.value) if is_deferred(o.value) else (MASK if o.sensitive else repr(o.value))
            tag = " (at run time)" if is_deferred(o.value) else ""
            tag += " (sensitive)" if o.sensitive else ""
            typer.echo(f"  {o.name} = {val}{tag}")


def outputs(outs: dict[str, dict[str, Any]], name: str, hint: bool = True) -> None:
    if not outs:
        return
    typer.echo("Outputs:")
    width = max(len(k) for k in outs)
    masked = False
    for k, o in outs.items():
        value = o["value"] if o["known"] else "(not known yet)"
        masked = masked or (o["sensitive"] and value == MASK)
        typer.echo(f"  {k:<{width}} = {value}")
    if masked and hint:
        typer.echo(f"(sensitive outputs are masked: dodas outputs {name} --show-secrets)")
    if any(o["known"] and str(o["value"]).startswith("spark://") for o in outs.values()):
        typer.echo(f"Spark applications need the cluster's secret. `dodas spark-conf {name} -o DIR` writes "
                   "DIR/spark-defaults.conf (the master URL and the secret, mode 0600); then run "
                   "`SPARK_CONF_DIR=DIR pyspark` (or spark-submit, or any PySpark program started with that "
                   "SPARK_CONF_DIR). Never put the secret on a command line.")


def deployments(deps: list[dict[str, Any]]) -> None:
    if not deps:
        typer.echo("no deployments")
        return
    typer.echo(f"{'NAME':<24} {'STATUS':<20} {'PROVIDER':<10} UPDATED")
    for d in deps:
        lock = "  (locked)" if d["locked_by"] else ""
        typer.echo(f"{d['name']:<24} {d['status']:<20} {d['provider']:<10} {d['updated_at'][:19]}{lock}")


def status(st: dict[str, Any]) -> None:
    degraded = st.get("degraded") or {}
    typer.echo(f"{st['name']}: {st['status']} on {st['provider']}" + (", DEGRADED" if degraded else ""))
    if st.get("reason"):
        typer.echo(f"  reason: {st['reason']}")
    lost = {n["id"]: n for n in (st.get("elastic") or {}).get("nodes") or [] if n["lost"]}
    for inst, names in degraded.items():
        if inst in lost:
            typer.echo(f"  lost: {', '.join(names)} of {inst}, which dodas has {lost[inst]['dodas_state']} (the "
                       f"autoscaler and the next `dodas up {st['name']}` replace it)")
            continue
        typer.echo(f"  dead: {', '.join(names)} of {inst} (dodas up {st['name']} starts "
                   f"{'it' if len(names) == 1 else 'them'} again)")
    lock = st.get("lock")
    if lock:
        who = f"pid {lock['pid']} on {lock['host']}"
        if lock["alive"] is False:
            typer.echo(f"  locked by {who}, which is no longer running: the next dodas up or destroy "
                       "takes the lock over")
        elif lock["alive"] is None:
            typer.echo(f"  locked by {who} (another host: whether it still runs cannot be checked from here)")
        else:
            typer.echo(f"  locked by {who}, running since {(lock.get('since') or '?')[:19]}")
    elif st.get("locked_by"):
        typer.echo(f"  locked by {st['locked_by']}")
    for node, count in (st.get("managed_counts") or {}).items():
        typer.echo(f"  {node}: {count} instance{'s' if count != 1 else ''}, a count managed by the autoscaler "
                   "(the deployment's own, not the template's)")
    elastic = st.get("elastic")
    if elastic:
        p = elastic["policy"]
        who = f"autoscaled by {elastic['autoscaler']}" if elastic.get("autoscaler") else \
            "no autoscaler running (dodas autoscale NAME, or a server's workers)"
        managed = ", its count managed by the autoscaler (the deployment's, not the template's)" \
            if p.get("count_managed") else ""
        typer.echo(f"  elastic: {p['node']} {elastic['current']} (min {elastic['min']}, max {elastic['max']}), "
                   f"watching {p['workload']}{managed}; {who}")
        for n in elastic.get("nodes") or []:
            since = f" since {n['since'][11:19]}" if n.get("since") else ""
            said = f" ({n['workload_state']})" if n.get("workload_state") else ""
            typer.echo(f"    {n['id']:<24} {n['state']}{since}{said}")
        if elastic.get("workload_problem"):
            typer.echo(f"    {elastic['workload_problem']}")
        for d in elastic.get("decisions") or []:
            typer.echo(f"    {d['time'][11:19]} {d['reason']}")
    attempts = st.get("attempts") or []
    if len(attempts) > 1 or any(a["status"] != "succeeded" for a in attempts):
        typer.echo("  attempts:")
        for a in attempts:
            err = f": {a['error'].splitlines()[0]}" if a.get("error") else ""
            typer.echo(f"    #{a['number']} {a['provider']:<12} {a['status']}{err}")
    for i in st["instances"]:
        line = f"  {i['id']:<28} {i['state']:<12}"
        if i.get("address"):
            line += f" {i['address']}"
        typer.echo(line)
        for sname, svc in (i.get("services") or {}).items():
            alive = {True: "alive", False: "DEAD", None: "unknown"}[svc["alive"]]
            typer.echo(f"      {sname:<20} pid {svc['pid']:<8} {alive}")
        if i.get("error"):
            typer.echo(f"      error: {i['error'].splitlines()[0]}")


def plural(n: int, word: str, words: str | None = None) -> str:
    """"1 instance", "2 instances" ("0 instances")."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def when(iso: str) -> str:
    """An ISO 8601 time to the second, with its offset (2026-12-04T01:02:03+00:00)."""
    from datetime import datetime
    try:
        return datetime.fromisoformat(iso).isoformat(timespec="seconds")
    except ValueError:
        return iso


def event(e: dict[str, Any]) -> None:
    where = f" {e['instance']}" if e["instance"] else ""
    typer.echo(f"{when(e['time'])} {e['level']:<7} {e['phase']:<9}{where}: {e['message']}")


def providers(rows: list[dict[str, Any]]) -> None:
    typer.echo(f"{'NAME':<16} {'TYPE':<10} {'RANK':>8}  CREDENTIALS")
    for r in rows:
        line = f"{r['name']:<16} {r['type']:<10} {r['rank']:>8}  {r['credentials']}"
        if r.get("check"):
            line += f"  [{'ok' if r['check']['ok'] else 'FAILED'}: {r['check']['message']}]"
        typer.echo(line)
