"""How a plan reads on a terminal: its sections (the instances wave by wave,
the values deferred to run time, the outputs), then the changes against the
state in Terraform's shape (a symbol per action, the reasons under each
instance, one summary line). Everything is read from the plan's JSON form, the
one a server answers, so a plan made through a server shows exactly as a local
one."""

from __future__ import annotations

from typing import Any

import typer

SYMBOL = {"create": "+", "reconfigure": "~", "restart": "↻", "delete": "-"}


def show(p: dict[str, Any], json_out: bool) -> None:
    """A plan's JSON, as --json prints it or as its sections and changes read."""
    if json_out:
        from dodas.cli.common import print_json
        print_json(p)
    else:
        sections(p)
        changes(p)


def sections(p: dict[str, Any]) -> None:
    """The plan itself: a header, the inputs (secrets masked), each wave's instances
    with their machines and what they wait for, deferred values and outputs."""
    from dodas.model.deployment import MANAGED_COUNT_PREFIX
    from dodas.model.indexes import PREFIX as INDEXES_PREFIX
    from dodas.redact import MASK

    insts = p["instances"]
    node_of = {i["id"]: i["node"] for i in insts}
    by_id = {i["id"]: i for i in insts}
    machines = sum(1 for i in insts if i["kind"] == "compute")
    typer.echo(f"Plan for {p['template']}: {len(insts)} instances ({machines} machines) in {len(p['waves'])} waves")
    declared = {k: v for k, v in p["inputs"].items()  # counts shown as elastic, indexes as instances
                if not k.startswith((MANAGED_COUNT_PREFIX, INDEXES_PREFIX))}
    if declared:
        typer.echo("Inputs: " + ", ".join(f"{k}={MASK if v == MASK else repr(v)}" for k, v in sorted(declared.items())))
    for n, wave in enumerate(p["waves"], start=1):
        typer.echo(f"\nWave {n}:")
        for iid in wave:
            inst = by_id[iid]
            typer.echo(f"  {iid:<28} {inst['type']}" + (f"  on {inst['host']}" if inst["host"] else ""))
            if inst["compute"]:
                typer.echo(f"      {compute_line(inst['compute'])}")
            after = sorted({node_of.get(d, d) for d in inst["depends_on"] if d != inst["host"]})
            if after:
                typer.echo(f"      after: {', '.join(after)}")
    shown: list[str] = []
    for d in p["deferred"]:
        if d["instance"] and d["where"].startswith("properties."):
            where = d["where"][len("properties."):]
            line = f"  {node_of.get(d['instance'], d['instance'])}.{where} = {expr(d['value'])}"
            if line not in shown:
                shown.append(line)
    if shown:
        typer.echo("\nDeferred to run time:")
        for line in shown:
            typer.echo(line)
    if p["outputs"]:
        typer.echo("\nOutputs:")
        for name, o in p["outputs"].items():
            val = expr(o["value"]) if o["deferred"] else (MASK if o["sensitive"] else repr(o["value"]))
            typer.echo(f"  {name} = {val}" + (" (at run time)" if o["deferred"] else "")
                       + (" (sensitive)" if o["sensitive"] else ""))


def expr(value: Any) -> str:
    """A deferred value (its JSON form) as the user would write it, compactly."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, args), = value.items()
        if fn == "get_attribute":
            return "get_attribute(" + ", ".join(str(x) for x in args) + ")"
        if fn == "concat":
            return "concat(" + ", ".join(expr(a) for a in args) + ")"
        if fn == "join":
            return f"join([{', '.join(expr(a) for a in args[0])}], {args[1]!r})"
        if fn == "token":
            return f"token({expr(args[0])}, {args[1]!r}, {args[2]})"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def compute_line(c: dict[str, Any]) -> str:
    """A machine's size, image, network and ports on one line."""
    bits = []
    if c["instance_type"]:
        bits.append(f"type {c['instance_type']}")
    for key, unit in (("num_cpus", "cpu"), ("mem_mib", "MiB"), ("num_gpus", "gpu")):
        if c.get(key):
            bits.append(f"{c[key]} {unit}")
    bits.append(f"image {c['image'] or '(provider default)'}")
    bits.append(f"network {c['network']}")
    if c["ports"]:
        bits.append("ports " + ",".join(f"{pt['source'] or pt['target']}/{pt['protocol']}" for pt in c["ports"]))
    return ", ".join(bits)


def summary_line(p: dict[str, Any]) -> str:
    n = p["summary"]
    restart = f"{n['restart']} to restart, " if n["restart"] else ""
    return f"Plan: {n['create']} to create, {n['reconfigure']} to reconfigure, {restart}{n['delete']} to delete."


def elastic_line(pol: dict[str, Any]) -> str:
    """One elasticity policy of a plan's JSON, as `plan` shows it."""
    managed = (f"\n  {pol['node']}: {pol['count']} instance{'s' if pol['count'] != 1 else ''}, a count managed by "
               "the autoscaler (kept in the deployment's state; the template's fixed count is only where it starts)"
               if pol.get("count_managed") and "count" in pol else "")
    return (f"elastic: {pol['node']} {pol['min_instances']}..{pol['max_instances']}, idle {pol['idle_time']:g} s, "
            f"watching {pol['workload']} ({pol['source']}){managed}")


def changes(p: dict[str, Any]) -> None:
    if p.get("policies"):  # a server older than policies sends none
        typer.echo("")
        for pol in p["policies"]:
            typer.echo(elastic_line(pol))
    dep = p["deployment"]
    if not dep["exists"]:
        typer.echo(f'\nDeployment "{dep["name"]}" does not exist yet: up creates it'
                   + (f" on provider {p['provider']}." if p["provider"] else "."))
    else:
        typer.echo(f'\nDeployment "{dep["name"]}" ({dep["status"]}) on provider {p["provider"]}'
                   + ("" if p["refreshed"] else " (as recorded; not refreshed)") + ":")
    if p["provider"] is None:
        typer.echo("  no configured provider can deploy it:")
        for name, problems in p["provider_problems"].items():
            for problem in problems:
                typer.echo(f"    {name}: {problem}")
    elif p["provider_problems"]:
        typer.echo("  providers passed over: " + "; ".join(f"{n} ({'; '.join(pr)})"
                                                         for n, pr in p["provider_problems"].items()))
    if p.get("replaces_template"):
        typer.echo(f"  replaces the deployment made from {p['replaces_template']}")
    if p["changed_inputs"]:
        typer.echo("  inputs changed: " + ", ".join(p["changed_inputs"]))
    if p["kept_inputs"]:
        typer.echo("  inputs kept from the deployment: " + ", ".join(p["kept_inputs"]))
    if dep["exists"]:
        for c in p["changes"]:
            typer.echo(f"  {SYMBOL[c['action']]} {c['instance']:<28} {c['action']}")
            for why in c["reasons"]:
                typer.echo(f"      {why}")
        if not p["has_changes"]:
            typer.echo("  no changes: the deployment matches the template.")
        if p["output_changes"]:
            typer.echo("\nOutputs that would change:")
            for name, o in p["output_changes"].items():
                typer.echo(f"  {name}: {_v(o['before'])} -> {_v(o['after'])}")
    typer.echo("\n" + summary_line(p))


def _v(value: object) -> str:
    return "(none)" if value is None else str(value)
