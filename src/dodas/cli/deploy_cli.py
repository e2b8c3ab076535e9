"""`dodas plan`, `up`, `scale` and `destroy`: the commands that change a
deployment, on this machine (services/) or through a server (remote_cli.py,
fed by the same renderers). Options that only this machine's run can honour
(parallelism, lock waits, failover) are refused through a server with the
reason, never silently dropped."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from dodas.cli import render_plan
from dodas.cli.confirm import confirm
from dodas.cli.common import (ExternalPlaybooksOpt, InputOpt, InputsFileOpt, JsonOpt, NameArg, OfflineOpt, RemoveOpt,
                              StrictOpt,
                              TemplateArg, print_json, warn)


def register(app: typer.Typer) -> None:
    for command in (plan, up, scale, destroy):
        app.command()(command)


def _remote() -> Any:  # a client.remote.Remote, or None when working locally
    from dodas.cli.backend import connect, server_url

    url = server_url()
    return None if url is None else connect(url)


def local_only(command: str, given: dict[str, bool]) -> None:
    """Refuse the options given that a server does not take (its workers decide them)."""
    named = [opt for opt, on in given.items() if on]
    if named:
        from dodas.errors import UsageError
        raise UsageError(f"through a server, {command} takes no {', '.join(named)}: the server's workers apply its "
                         "own settings for these (unset DODAS_SERVER to run it on this machine)")


def _no_remote_remove() -> None:
    from dodas.errors import DodasError
    raise DodasError("--remove is not sent to a server yet: use its IM API's removal_list")


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
         strict: StrictOpt = False, remove: RemoveOpt = None) -> None:
    """Show what `up` would do: the instances, and what it would create, reconfigure, restart or delete."""
    from dodas.services import planning

    remote = _remote()
    if remote is not None and remove:
        _no_remote_remove()
    if remote is not None:
        from dodas.cli import remote_cli
        local_only("plan", {"--overcommit": overcommit, "--allow-external-playbooks": allow_external_playbooks,
                            "--strict": strict})
        p = remote_cli.plan(remote, target, name, input, inputs, json_out, provider=provider, refresh=refresh)
        if detailed_exitcode and p["has_changes"]:
            raise typer.Exit(2)
        return
    template, dep_name = planning.resolve_target(target, name)
    p = planning.prepare(template, name=dep_name, pairs=input, inputs_file=inputs, provider_name=provider,
                         offline=offline, overcommit=overcommit, allow_external_playbooks=allow_external_playbooks,
                         strict=strict, refresh=refresh, require_provider=False, remove=remove or ())
    warn(p.plan)
    render_plan.show(p.to_json(), json_out)
    if detailed_exitcode and p.has_changes():
        raise typer.Exit(2)


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
       strict: StrictOpt = False, remove: RemoveOpt = None) -> None:
    """Deploy a template, or bring an existing deployment in line with it.

    Shows the plan and asks before deleting anything or replacing a deployment made from another template
    (and, on a terminal, before any change to an existing deployment)."""
    from dodas.errors import DodasError
    from dodas.services import planning

    if parallelism < 1:
        raise DodasError("--parallelism must be at least 1")
    remote = _remote()
    if remote is not None and remove:
        _no_remote_remove()
    if remote is not None:
        from dodas.cli import remote_cli
        local_only("up", {"--parallelism": parallelism != 10, "--max-providers": max_providers != 3,
                          "--keep-failed": keep_failed, "--overcommit": overcommit,
                          "--lock-timeout": bool(lock_timeout),
                          "--allow-external-playbooks": allow_external_playbooks, "--strict": strict})
        remote_cli.up(remote, template, name or planning.default_name(template), input, inputs, yes=yes,
                      quiet=quiet, json_out=json_out, provider=provider)
        return
    wait = _duration(lock_timeout, "--lock-timeout") if lock_timeout else 0.0
    p = planning.prepare(template, name=name, pairs=input, inputs_file=inputs, provider_name=provider,
                         offline=offline, max_providers=max_providers, overcommit=overcommit,
                         allow_external_playbooks=allow_external_playbooks, strict=strict, refresh=True,
                         require_provider=not plan_only, remove=remove or ())
    warn(p.plan)
    if plan_only:
        render_plan.show(p.to_json(), json_out)
        return
    confirm(p.to_json(), f"dodas plan {template} --name {p.name}", yes=yes, quiet=quiet, json_out=json_out)
    _apply(p, parallelism=parallelism, keep_failed=keep_failed, wait=wait, quiet=quiet, json_out=json_out)


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
        print_json({"name": result.name, "status": result.status, "changed": result.changed,
                     "plan": {"summary": p.summary(), "changes": [c.to_json() for c in p.changes]},
                     "outputs": outs, "warnings": [str(w) for w in p.plan.model.warnings]})
    else:
        typer.echo(f"{result.name}: {result.status}" + ("" if result.changed else " (nothing to change)"))
        render.outputs(outs, result.name)


def _duration(text: str, option: str) -> float:
    from dodas.durations import parse_duration
    return parse_duration(text, option)


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
        local_only("scale", {"--parallelism": parallelism != 10})
        remote_cli.scale(remote, name, node, count, yes=yes, quiet=quiet, json_out=json_out)
        return
    template = Template.read(str(recorded.stored_template_of(name)))  # read once: asked, then planned
    p = planning.prepare(template, name=name, given=scaling.scale_inputs(template, node, count, name),
                         refresh=True)
    warn(p.plan)
    confirm(p.to_json(), f"dodas plan {name}", yes=yes, quiet=quiet, json_out=json_out)
    _apply(p, parallelism=parallelism, keep_failed=False, wait=0.0, quiet=quiet, json_out=json_out)


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
        local_only("destroy", {"--parallelism": parallelism != 10, "--lock-timeout": lock_timeout is not None})
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
    print_json(result) if json_out else typer.echo(f"{name}: DELETE_COMPLETE")


