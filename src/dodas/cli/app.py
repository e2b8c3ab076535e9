"""The `dodas` command line: argument parsing and rendering only.

Heavy modules (tosca-parser, SQLAlchemy, Ansible) are imported inside the
commands, so that `dodas --help` and shell completion stay fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

import typer

from dodas import __version__
from dodas.cli import autoscale_cli, htcondor_cli, login_cli

app = typer.Typer(
    name="dodas", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Deploy analysis platforms (Spark + Jupyter, Kubernetes, HTCondor, caches) from a TOSCA "
         "template, on this machine or on any cloud.",
)

TemplateArg = Annotated[str, typer.Argument(help="TOSCA template file (YAML).", show_default=False)]
InputOpt = Annotated[Optional[list[str]], typer.Option(
    "-i", "--input", help="An input value, KEY=VALUE; repeatable. Wins over --inputs files and DODAS_INPUT_<KEY> "
                          "environment variables.", show_default=False)]
InputsFileOpt = Annotated[Optional[list[str]], typer.Option(
    "--inputs", "-f", help="A YAML file of input values; repeatable, a later file wins (as Helm's -f). Precedence, "
                           "lowest first: DODAS_INPUT_<name> environment variables, --inputs files in order, -i.",
    show_default=False)]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="Never fetch remote imports; refuse those not bundled or cached.")]
#: set by --json (through its callback) before a command runs: warnings then go into the
#: JSON output, and errors are printed as JSON on stderr (main)
_MODE: dict = {"json": False, "warnings": []}


def _json_mode(value: bool) -> bool:
    if value:
        _MODE["json"] = True
    return value


JsonOpt = Annotated[bool, typer.Option("--json", callback=_json_mode, help="Machine-readable output (see "
                                       "docs/PLAN_FORMAT.md); errors too, as JSON on stderr.")]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Refuse what is only warned about (a duplicate key, a value read as its declared type, "
                     "an outdated version; in validate, what plan and up refuse for safety).")]
ExternalPlaybooksOpt = Annotated[bool, typer.Option(
    "--allow-external-playbooks", help="Run playbooks from outside dodas's own and the template's directory "
                                       "(other paths, http(s) URLs).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dodas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False,
          server_url: Annotated[Optional[str], typer.Option("--server", metavar="URL", help="Work through this dodas "
                                                            "server (also DODAS_SERVER): up, plan, list, status, "
                                                            "outputs, logs, destroy and scale.",
                                                            show_default=False)] = None) -> None:
    """dodas: one TOSCA template, one command, a working platform."""
    if server_url:
        os.environ["DODAS_SERVER"] = server_url


def _remote():  # a client.remote.Remote, or None when working locally
    """The server to work through (--server or DODAS_SERVER), or None."""
    url = os.environ.get("DODAS_SERVER", "").strip()
    if not url:
        return None
    from dodas.cli import remote_cli
    return remote_cli.connect(url)


@app.command()
def validate(template: TemplateArg, input: InputOpt = None, inputs: InputsFileOpt = None,
             offline: OfflineOpt = False, json_out: JsonOpt = False,
             allow_external_playbooks: ExternalPlaybooksOpt = False, strict: StrictOpt = False) -> None:
    """Check a template and its inputs; exit 0 when valid, 1 when not."""
    from dodas import services

    p = services.validate(template, input, inputs, offline=offline, allow_external_playbooks=allow_external_playbooks,
                          strict=strict)
    _warn(p)
    unknown = sorted(p.unknown_inputs)
    if json_out:
        _print_json({"valid": True, "template": template, "instances": len(p.instances), "waves": len(p.waves),
                     "unknown_inputs": unknown})
    else:
        from dodas.cli.render import plural
        typer.echo(f"{template}: valid ({plural(len(p.model.nodes), 'node')}, "
                   f"{plural(len(p.instances), 'instance')}, {plural(len(p.waves), 'wave')})")
        if unknown:
            typer.echo(f"  inputs without a value, checked as any value of their type: {', '.join(unknown)} "
                       "(plan and up need them)")
        from dodas.model.support import known_only_nodes
        for node, why in known_only_nodes(p.model).items():
            typer.echo(f'  node "{node}" ({p.model.nodes[node].type}) is known but dodas cannot deploy it: {why}')


@app.command()
def plan(target: Annotated[str, typer.Argument(help="A TOSCA template file, or the name of a deployment to plan "
                                               "with its stored template.", show_default=False)],
         name: Annotated[Optional[str], typer.Option("--name", "-n", help="Compare with this deployment (default: "
                                                     "the template file's name, as up names it).",
                                                     show_default=False)] = None,
         input: InputOpt = None, inputs: InputsFileOpt = None,
         offline: OfflineOpt = False,
         provider: Annotated[Optional[str], typer.Option(
             "--provider", "-p", help="Plan for this provider (default: the best-ranked one that can take it, "
                                      "as up chooses).", show_default=False)] = None,
         overcommit: Annotated[bool, typer.Option("--overcommit", help="Accept machines beyond the provider's "
                                                  "capacity.")] = False,
         refresh: Annotated[bool, typer.Option("--refresh/--no-refresh", help="Ask the provider whether recorded "
                                               "services still run (default), or compare with the records only.")]
         = True,
         detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode", help="Exit 0 when nothing would "
                                                         "change, 2 when something would, 1 on error.")] = False,
         json_out: JsonOpt = False, allow_external_playbooks: ExternalPlaybooksOpt = False,
         strict: StrictOpt = False) -> None:
    """Show what `up` would do: the instances, and what it would create, reconfigure, restart or delete."""
    from dodas.cli import render, render_plan
    from dodas.services import planning

    remote = _remote()
    if remote is not None:
        from dodas.cli import remote_cli
        p = remote_cli.plan(remote, target, name or planning.default_name(target), input, inputs, json_out)
        if detailed_exitcode and p["has_changes"]:
            raise typer.Exit(2)
        return
    template, dep_name = planning.resolve_target(target, name)
    p = planning.prepare(template, name=dep_name, pairs=input, inputs_file=inputs, provider_name=provider,
                         offline=offline, overcommit=overcommit, allow_external_playbooks=allow_external_playbooks,
                         strict=strict, refresh=refresh, require_provider=False)
    _warn(p.plan)
    if json_out:
        _print_json(p.to_json())
    else:
        render.plan(p.plan)
        render_plan.changes(p.to_json())
    if detailed_exitcode and p.has_changes():
        raise typer.Exit(2)


def _complete_names(incomplete: str) -> list[str]:
    """Shell completion of a deployment NAME: the state's names; silent on any error."""
    try:
        from dodas.services import read
        return read.deployment_names(incomplete)
    except BaseException:  # noqa: BLE001 - a completion never shows an error
        return []


NameArg = Annotated[str, typer.Argument(help="Deployment name.", show_default=False,
                                        autocompletion=_complete_names)]
#: `dodas status` exit code of a deployment with a dead service (README, "Exit codes")
DEGRADED = 5


@app.command()
def up(template: TemplateArg,
       name: Annotated[Optional[str], typer.Option("--name", "-n", help="Deployment name (default: the "
                                                   "template file's name).", show_default=False)] = None,
       input: InputOpt = None, inputs: InputsFileOpt = None,
       provider: Annotated[Optional[str], typer.Option("--provider", "-p", help="Provider to deploy on (default: "
                                                       "the best-ranked configured provider that can take it; "
                                                       "see `dodas plan`).", show_default=False)] = None,
       parallelism: Annotated[int, typer.Option("--parallelism", help="At most this many provider calls "
                                                "and Ansible forks at once.")] = 10,
       offline: OfflineOpt = False,
       max_providers: Annotated[int, typer.Option("--max-providers", help="Try at most this many providers, "
                                                  "in rank order, for a new deployment.")] = 3,
       keep_failed: Annotated[bool, typer.Option("--keep-failed", help="Keep the last failed attempt for "
                                                 "debugging instead of removing it.")] = False,
       overcommit: Annotated[bool, typer.Option("--overcommit", help="Deploy even if the machines need more "
                                                "cores or memory than the provider has (local: this "
                                                "machine).")] = False,
       yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking, even when the plan deletes "
                                         "instances or replaces the deployment's template.")] = False,
       plan_only: Annotated[bool, typer.Option("--plan-only", help="Show the plan and stop (as `dodas plan`).")]
       = False,
       lock_timeout: Annotated[Optional[str], typer.Option("--lock-timeout", help="Wait this long for the "
                                                           "deployment's lock (30s, 5m); default: fail at once.",
                                                           show_default=False)] = None,
       quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
       json_out: JsonOpt = False, allow_external_playbooks: ExternalPlaybooksOpt = False,
       strict: StrictOpt = False) -> None:
    """Deploy a template, or bring an existing deployment in line with it.

    Shows the plan and asks before deleting anything or replacing a deployment made from another template
    (and, on a terminal, before any change to an existing deployment)."""
    from dodas.cli import render, render_plan
    from dodas.errors import DodasError
    from dodas.services import planning

    if parallelism < 1:
        raise DodasError("--parallelism must be at least 1")
    remote = _remote()
    if remote is not None:
        from dodas.cli import remote_cli
        remote_cli.up(remote, template, name or planning.default_name(template), input, inputs, yes=yes,
                      quiet=quiet, json_out=json_out, provider=provider)
        return
    wait = _duration(lock_timeout, "--lock-timeout") if lock_timeout else 0.0
    p = planning.prepare(template, name=name, pairs=input, inputs_file=inputs, provider_name=provider,
                         offline=offline, max_providers=max_providers, overcommit=overcommit,
                         allow_external_playbooks=allow_external_playbooks, strict=strict, refresh=True,
                         require_provider=not plan_only)
    _warn(p.plan)
    if plan_only:
        if json_out:
            _print_json(p.to_json())
        else:
            render.plan(p.plan)
            render_plan.changes(p.to_json())
        return
    _confirm(p, f"dodas plan {template} --name {p.name}", yes=yes, quiet=quiet, json_out=json_out)
    _apply(p, parallelism=parallelism, keep_failed=keep_failed, wait=wait, quiet=quiet, json_out=json_out)


def _confirm(p: object, how_to_look: str, *, yes: bool, quiet: bool, json_out: bool) -> None:
    """Show the plan and ask, where up must (services.planning.confirmation_reason)."""
    from dodas.cli import render_plan

    person = sys.stdin.isatty() and sys.stdout.isatty() and not json_out
    why = p.needs_confirmation(interactive=person)
    if why and not yes:
        if not person:
            raise ConfirmationNeeded(f'the plan for "{p.name}" needs confirmation because {why}: look at it with '
                                     f"`{how_to_look}`, then run it again with --yes")
        if not quiet:
            render_plan.changes(p.to_json())
        if not typer.confirm(f"Apply this plan ({why})?", default=False):
            raise ConfirmationNeeded("not applied: nothing was changed")
    elif p.has_changes() and not quiet and not json_out and p.deployment is not None:
        render_plan.changes(p.to_json())


def _apply(p: object, *, parallelism: int, keep_failed: bool, wait: float, quiet: bool, json_out: bool) -> None:
    from dodas.cli import progress, render
    from dodas.services import deploy, read

    listener = progress.factory(quiet=quiet or json_out)
    try:
        result = deploy.apply(p, parallelism=parallelism, listener=listener, keep_failed=keep_failed,
                              lock_timeout=wait)
    finally:
        listener.close()
    outs = read.outputs(result.name, plan=p.plan)
    if json_out:
        _print_json({"name": result.name, "status": result.status, "changed": result.changed,
                     "plan": {"summary": p.summary(), "changes": [c.to_json() for c in p.changes]},
                     "outputs": outs, "warnings": [str(w) for w in p.plan.model.warnings]})
    else:
        typer.echo(f"{result.name}: {result.status}" + ("" if result.changed else " (nothing to change)"))
        render.outputs(outs, result.name)


def _duration(text: str, option: str) -> float:
    from dodas.durations import parse_duration
    return parse_duration(text, option)


def ConfirmationNeeded(message: str) -> Exception:  # named like a class: it reads as the error it makes
    """The face's question went unanswered (no terminal, or answered no): exit 1, nothing changed."""
    from dodas.errors import DodasError
    return DodasError(message)


@app.command()
def scale(name: NameArg,
          node: Annotated[str, typer.Argument(help="The node to scale (a compute node whose count is an input).",
                                              show_default=False)],
          count: Annotated[int, typer.Argument(help="Its new number of instances.", min=0, show_default=False)],
          yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking, even when it deletes "
                                            "instances.")] = False,
          parallelism: Annotated[int, typer.Option("--parallelism", help="At most this many provider calls and "
                                                   "Ansible forks at once.")] = 10,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
          json_out: JsonOpt = False) -> None:
    """Set a node's number of instances: up with its count input changed, everything else kept."""
    from dodas.model.template import Template
    from dodas.services import planning, recorded, scaling

    remote = _remote()
    if remote is not None:
        from dodas.cli import remote_cli
        remote_cli.scale(remote, name, node, count, quiet, json_out)
        return
    template = Template.read(str(recorded.stored_template_of(name)))  # read once: asked, then planned
    p = planning.prepare(template, name=name, given=scaling.scale_inputs(template, node, count, name),
                         refresh=True)
    _warn(p.plan)
    _confirm(p, f"dodas plan {name}", yes=yes, quiet=quiet, json_out=json_out)
    _apply(p, parallelism=parallelism, keep_failed=False, wait=0.0, quiet=quiet, json_out=json_out)


@app.command()
def refresh(name: NameArg, json_out: JsonOpt = False) -> None:
    """Ask the provider what really exists and record the drift.

    Machines gone and services dead are recorded; `plan` then shows them and `up` repairs them."""
    from dodas.services.refresh import refresh as do_refresh

    drift = do_refresh(name)
    if json_out:
        _print_json(drift.to_json())
        return
    for iid in drift.missing:
        typer.echo(f"  {iid}: its machine is gone (the next up creates it again)")
    for iid, dead in drift.dead_services.items():
        typer.echo(f"  {iid}: not running: {', '.join(dead)}")
    n = drift.checked
    typer.echo(f"{name}: {n} machine{'s' if n != 1 else ''} checked, "
               + ("drift recorded; see `dodas plan`" if drift.to_json()["drift"] else "no drift"))


@app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", "-a", help="Also destroyed deployments (DELETE_COMPLETE), "
                                              "kept until `dodas forget NAME`.")] = False,
          json_out: JsonOpt = False) -> None:
    """List deployments (destroyed ones only with --all)."""
    from dodas.cli import render
    from dodas.services import read

    remote = _remote()
    deps = remote.list_deployments(all_) if remote is not None else read.list_deployments(include_deleted=all_)
    _print_json(deps) if json_out else render.deployments(deps)


@app.command()
def status(name: NameArg, json_out: JsonOpt = False) -> None:
    """A deployment's state, its instances, and whether each service is alive.

    Exits 5 when the deployment is degraded (a service it started is dead), so
    that scripts and monitors see it without parsing the output."""
    from dodas.cli import render
    from dodas.services import read

    remote = _remote()
    st = remote.status(name) if remote is not None else read.status(name)
    _print_json(st) if json_out else render.status(st)
    if st.get("degraded"):
        raise typer.Exit(DEGRADED)


@app.command()
def outputs(name: NameArg,
            key: Annotated[Optional[str], typer.Argument(help="Only this output.", show_default=False)] = None,
            show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Show sensitive outputs "
                                                       "(tokens) instead of masking them.")] = False,
            raw: Annotated[bool, typer.Option("--raw", help="With KEY: print the value alone (a string without "
                                              "quotes, anything else as JSON), for $(dodas outputs NAME KEY "
                                              "--raw).")] = False,
            json_out: JsonOpt = False) -> None:
    """A deployment's outputs (URLs, tokens), or one of them."""
    from dodas.cli import render
    from dodas.services import read

    remote = _remote()
    if key is not None:
        one = read.output(name, key, show_secrets=show_secrets, source=remote)
        if raw:
            value = one["value"]
            sys.stdout.write((value if isinstance(value, str) else json.dumps(value)) + "\n")
        elif json_out:
            _print_json({key: {k: v for k, v in one.items() if k != "name"}})
        else:
            typer.echo(f"{key} = {one['value']}")
        return
    if raw:
        from dodas.errors import UsageError
        raise UsageError(f"--raw prints one output: give its KEY (dodas outputs {name} KEY --raw)")
    outs = remote.outputs(name, show_secrets) if remote is not None else read.outputs(name, show_secrets=show_secrets)
    _print_json(outs) if json_out else render.outputs(outs, name, hint=not show_secrets)


@app.command()
def logs(name: NameArg,
         node: Annotated[Optional[str], typer.Argument(help="Only this node's instances (NODE), or one instance "
                                                       "(NODE\\[i]).", show_default=False)] = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
         since: Annotated[Optional[str], typer.Option("--since", help="Only events since this long ago (30s, 5m, "
                                                      "1h30m, 2d) or this ISO 8601 time (2026-12-04T10:00:00+01:00; "
                                                      "without an offset, local time).", show_default=False)] = None,
         tail: Annotated[Optional[int], typer.Option("--tail", help="Only the last N events (then, with "
                                                     "--follow, every new one).", show_default=False)] = None,
         json_out: JsonOpt = False) -> None:
    """A deployment's events, oldest first; times in ISO 8601 with their offset."""
    import time

    from dodas.cli import render
    from dodas.services import read

    remote = _remote()
    if remote is not None:
        if node or since or tail is not None:
            from dodas.errors import UsageError
            raise UsageError("through a server, logs takes no NODE, --since or --tail (yet): all events, or -f")
        from dodas.cli import remote_cli
        remote_cli.logs(remote, name, follow, json_out)
        return
    which = read.event_filter(name, node)
    start = read.parse_since(since) if since else None
    last, first = 0, True
    while True:
        _, evs = read.events(name, after_id=last, since=start, tail=tail if first else None, **which)
        if first and tail == 0 and follow:  # none of the old ones: follow from the newest
            _, newest = read.events(name, since=start, tail=1, **which)
            last = newest[-1]["id"] if newest else 0
        first = False
        for e in evs:
            if json_out:
                sys.stdout.write(json.dumps(e) + "\n")
            else:
                render.event(e)
            last = e["id"]
        sys.stdout.flush()
        if not follow:
            break
        time.sleep(1.0)


@app.command()
def destroy(name: NameArg,
            yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
            parallelism: Annotated[int, typer.Option("--parallelism", help="At most this many provider calls "
                                                     "and Ansible forks at once.")] = 10,
            lock_timeout: Annotated[Optional[str], typer.Option("--lock-timeout", help="Wait this long for the "
                                                                "deployment's lock if another dodas holds it (30s, "
                                                                "5m, 1h30m); default: fail at once.",
                                                                show_default=False)] = None,
            quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
            json_out: JsonOpt = False) -> None:
    """Stop and delete everything a deployment made. Safe to repeat."""
    from dodas.cli import progress
    from dodas.cli.render import plural
    from dodas.durations import parse_duration
    from dodas.services import lifecycle, read

    wait = parse_duration(lock_timeout, "--lock-timeout") if lock_timeout is not None else 0.0
    remote = _remote()
    if remote is not None:
        from dodas.cli import remote_cli
        remote_cli.destroy(remote, name, yes, quiet, json_out)
        return
    read_status = read.status(name)
    if not yes:
        if not sys.stdin.isatty() or json_out:
            from dodas.errors import DodasError
            raise DodasError(f'destroying "{name}" needs confirmation: run with --yes')
        typer.confirm(f'Destroy "{name}" ({plural(len(read_status["instances"]), "instance")})?', abort=True)
    make = progress.factory(quiet=quiet or json_out)
    try:
        result = lifecycle.destroy(name, parallelism=parallelism, lock_timeout=wait, listener=make)
    finally:
        make.close()
    _print_json(result) if json_out else typer.echo(f"{name}: DELETE_COMPLETE")


@app.command()
def providers(check: Annotated[bool, typer.Option("--check", help="Authenticate to each provider.")] = False,
              json_out: JsonOpt = False) -> None:
    """The configured providers, best rank first (and, with --check, whether each answers)."""
    from dodas.cli import render
    from dodas.services import read

    rows = read.providers(check=check)
    _print_json(rows) if json_out else render.providers(rows)
    if check and any(r.get("check") and not r["check"]["ok"] for r in rows):
        raise typer.Exit(1)


@app.command()
def kubeconfig(name: NameArg,
               output: Annotated[Optional[str], typer.Option("--output", "-o", help="File to write "
                                                             "(default: NAME.kubeconfig).", show_default=False)] = None,
               json_out: JsonOpt = False) -> None:
    """Write the admin kubeconfig of a deployment's Kubernetes cluster to a file (mode 0600)."""
    from dodas.services import read

    conf = read.kubeconfig(name)
    path = output or f"{name}.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(conf)
    os.chmod(path, 0o600)
    if json_out:
        _print_json({"name": name, "path": os.path.abspath(path), "mode": "0600"})
        return
    typer.echo(f"wrote {path} (use: KUBECONFIG={path} kubectl get nodes)")


@app.command("types")
def types_(deployable: Annotated[bool, typer.Option("--deployable", help="Only the node types dodas can "
                                                    "deploy.")] = False,
           json_out: JsonOpt = False) -> None:
    """The type library: every type templates may use, and which node types dodas deploys."""
    from dodas.services import types

    items = types.listing(deployable_only=deployable)
    if json_out:
        _print_json(items)
        return
    for item in items:
        verdict = ""
        if item["kind"] == "node":
            verdict = "deployable" if item["deployable"] else f"known only: {item['instead']}"
        typer.echo(f"{item['kind']:<13} {item['name']:<58} {verdict}".rstrip())


@app.command("spark-conf")
def spark_conf(name: NameArg,
               output: Annotated[str, typer.Option("--output", "-o", help="Directory to write spark-defaults.conf "
                                                   "into (made 0700; the file is 0600).")] = "spark-conf",
               json_out: JsonOpt = False) -> None:
    """Write a spark-defaults.conf with a Spark deployment's master URL and secret, for
    PySpark programs and spark-submit outside it (SPARK_CONF_DIR=DIR)."""
    from dodas.services import read

    conf = read.spark_conf(name)
    os.makedirs(output, mode=0o700, exist_ok=True)
    path = os.path.join(output, "spark-defaults.conf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(conf)
    os.chmod(path, 0o600)
    if json_out:
        _print_json({"name": name, "path": os.path.abspath(path), "conf_dir": os.path.abspath(output),
                     "mode": "0600"})
        return
    typer.echo(f"wrote {path} (use: SPARK_CONF_DIR={output} pyspark)")


@app.command()
def unlock(name: NameArg,
           force: Annotated[bool, typer.Option("--force", help="Clear it although its holder cannot be checked "
                                               "(it ran on another host); never for a live one of this host.")] = False,
           json_out: JsonOpt = False) -> None:
    """Clear a deployment's lock left by a dodas that died (refused while it runs; exit 6 when not locked)."""
    from dodas.services import lifecycle

    done = lifecycle.unlock(name, force=force)
    if json_out:
        _print_json(done)
        return
    h = done["holder"]
    typer.echo(f"{name}: unlocked (was held by {h['owner']}): pid {h['pid'] if h['pid'] is not None else '?'} "
               f"on {h['host']}, holding it since {h['since'] or 'an unknown time'}")


@app.command()
def forget(name: NameArg, json_out: JsonOpt = False) -> None:
    """Drop the records of a destroyed deployment (DELETE_COMPLETE); refused (exit 6) for any other.

    Its row, instances, events, attempts and kept template go (on a server, its owner too: the
    name is free again); `dodas destroy` it first."""
    from dodas.cli.render import plural

    remote = _remote()
    if remote is not None:
        done = remote.forget(name)
    else:
        from dodas.services import lifecycle
        done = lifecycle.forget(name)
    if json_out:
        _print_json(done)
        return
    n = done["removed"]
    typer.echo(f"{name}: forgotten, its records dropped ({plural(n['events'], 'event')}, "
               f"{plural(n['attempts'], 'attempt')}, {plural(n['instances'], 'instance')})")


#: the environment variable through which a shell asks dodas for completions
COMPLETE_VAR = "_DODAS_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def _complete(shell: str, what: str) -> int:
    """Print the completion script of a shell (what="source") or the completions of
    the words the shell sends (what="complete"), through Typer's public completion module."""
    from typer import completion

    completion.completion_init()  # Typer's bash/zsh/fish classes, not Click's plainer ones
    return completion.shell_complete(_command(), {}, "dodas", COMPLETE_VAR, f"{what}_{shell}")


@app.command()
def completion(shell: Annotated[str, typer.Argument(help="bash, zsh or fish.", show_default=False)]) -> None:
    """Print a shell completion script (bash, zsh, fish): commands, options, deployment names.

    bash: eval "$(dodas completion bash)" in ~/.bashrc; zsh: the same in ~/.zshrc;
    fish: dodas completion fish > ~/.config/fish/completions/dodas.fish."""
    if shell not in SHELLS:
        from dodas.errors import UsageError
        raise UsageError(f'no completion for shell "{shell}": dodas completes in {", ".join(SHELLS)}')
    _complete(shell, "source")


def _shell_complete(instruction: str) -> int:
    """Answer a shell's completion request (COMPLETE_VAR set): click's instructions
    (bash_complete, bash_source) and Typer's (complete_bash, as the script says)."""
    a, _, b = instruction.partition("_")
    shell, what = (a, b) if a in SHELLS else (b, a)
    if shell not in SHELLS or what not in ("complete", "source"):
        sys.stderr.write(f"error: {COMPLETE_VAR}={instruction}: not a completion instruction "
                         f"(SHELL_complete or SHELL_source, SHELL one of {', '.join(SHELLS)})\n")
        return 2
    return _complete(shell, what)


#: what an option's value is, in --help (options not named here: their name in capitals)
METAVARS = {"input": "KEY=VALUE", "inputs": "FILE", "lock_timeout": "DURATION", "since": "DURATION|TIME",
            "tail": "N", "parallelism": "N", "max_providers": "N", "output": "PATH", "provider": "PROVIDER"}


def _command() -> object:
    """The click command of `app`, with each option's value named in --help (FILE,
    DURATION, N, ...) and flags and arguments shown without Typer's <bool>/<str>."""
    import typer.main

    def bare(ctx: object) -> None:
        return None
    cmd = typer.main.get_command(app)
    for sub in [cmd, *getattr(cmd, "commands", {}).values()]:
        helper = sub.get_help_option(typer.Context(sub, info_name=sub.name))
        for param in [*sub.params, *([helper] if helper is not None else [])]:
            if param.param_type_name == "option" and not getattr(param, "is_flag", False):
                if param.metavar is None:
                    param.metavar = METAVARS.get(param.name or "", (param.name or "value").upper())
            else:  # a flag, or an argument (its name says what it is)
                if param.param_type_name == "argument" and param.metavar is None:
                    param.metavar = (param.name or "value").upper()
                param.display_type_rich = bare
    return cmd


@app.command()
def server(config: Annotated[Optional[str], typer.Option("--config", "-c", help="The server's configuration file "
                                                         "(default: server.yaml in dodas's config directory).",
                                                         show_default=False)] = None,
           bind: Annotated[Optional[str], typer.Option("--bind", help="HOST:PORT to serve on (default "
                                                       "127.0.0.1:8300; anything but loopback needs issuers).",
                                                       show_default=False)] = None,
           workers: Annotated[Optional[int], typer.Option("--workers", help="Worker threads in this process (0: "
                                                          "API only; run workers apart).", show_default=False)]
           = None,
           dev_issuer: Annotated[bool, typer.Option("--dev-issuer", help="Also start the development OIDC issuer "
                                                    "(NOT FOR PRODUCTION, loopback only) and trust it: to try the "
                                                    "server out on this machine.")] = False) -> None:
    """Serve the REST API (docs at /docs), with workers that carry out the deployments."""
    from dodas.server import serve

    serve.run(config, bind=bind, workers=workers, dev_issuer=dev_issuer, echo=typer.echo)


login_cli.register(app)
autoscale_cli.register(app)
htcondor_cli.register(app)


def _warn(p: object) -> None:
    """Warnings on stderr; under --json, kept for the JSON output instead (_print_json)."""
    for w in getattr(getattr(p, "model", None), "warnings", []):
        if _MODE["json"]:
            _MODE["warnings"].append(str(w))
        else:
            sys.stderr.write(f"{w.file}:{w.line}:{w.col}: warning: {w.message}\n")


def _print_json(data: object) -> None:
    if isinstance(data, dict) and _MODE["warnings"] and "warnings" not in data:
        data = {**data, "warnings": list(_MODE["warnings"])}
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _run() -> int:
    """Run the command line; its exit code. Click's own errors (usage, exit 2) are
    printed as Typer prints them, or under --json as the JSON error object."""
    from typer.core import HAS_RICH

    try:
        code = _command().main(prog_name="dodas", standalone_mode=False)
    except typer.TyperException as exc:  # Click's errors: Typer ships Click inside it, under this base
        if _json_errors():
            _fail(exc.format_message(), exc.exit_code)
        if HAS_RICH:
            from typer import rich_utils
            rich_utils.rich_format_error(exc)
        else:
            exc.show()
        return exc.exit_code
    except typer.Abort:
        _fail("Aborted!", 1)
    return code if isinstance(code, int) else 0


def _json_errors() -> bool:
    """Errors as JSON: --json was given (also when the error came before its callback ran)."""
    args = sys.argv[1:]
    return _MODE["json"] or "--json" in (args[:args.index("--")] if "--" in args else args)


def _fail(message: str, code: int, **extra: object) -> None:
    """An error, as text or (under --json) as {"error": {"message", "exit_code"}} on stderr; then exit."""
    if _json_errors():
        body: dict = {"error": {"message": message, "exit_code": code, **extra}}
        if _MODE["warnings"]:
            body["warnings"] = list(_MODE["warnings"])
        sys.stderr.write(json.dumps(body) + "\n")
    else:
        sys.stderr.write(f"{message}\n")
    sys.exit(code)


def main() -> None:
    """Entry point: every DodasError becomes its message and exit code, never a traceback.

    Typer runs in standalone mode, so usage errors exit 2 with its own message."""
    from dodas.environment import environment_problem
    from dodas.errors import DodasError, TemplateError

    _MODE.update(json=False, warnings=[])
    if os.environ.get(COMPLETE_VAR):  # the shell asks for completions (dodas completion SHELL)
        sys.exit(_shell_complete(os.environ[COMPLETE_VAR]))
    try:
        sys.exit(_run())
    except DodasError as exc:
        if isinstance(exc, TemplateError):
            if _json_errors():
                _print_json({"valid": False, "errors": [d.to_dict() for d in exc.diagnostics]})
                _fail(exc.message, exc.exit_code, diagnostics=[d.to_dict() for d in exc.diagnostics])
            _fail(exc.message, exc.exit_code)
        _fail(exc.message if _json_errors() else f"error: {exc.message}", exc.exit_code)
    except Exception as exc:  # the last line of defence against tracebacks
        if os.environ.get("DODAS_DEBUG"):
            raise
        problem = environment_problem(exc)
        if problem is not None:  # a full or read-only disk: the machine's problem, not dodas's
            _fail(problem if _json_errors() else f"error: {problem}", 1)
        _fail(f"internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in dodas; run again with DODAS_DEBUG=1 for details.", 70)
