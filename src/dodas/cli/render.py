"""Human-readable rendering of plans and deployments (the --json forms live with the data)."""

from __future__ import annotations

from typing import Any

import typer

from dodas.redact import MASK


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
