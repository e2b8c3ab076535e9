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

app = typer.Typer(
    name="dodas", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Deploy analysis platforms (Spark + Jupyter, Kubernetes, HTCondor, caches) from a TOSCA "
         "template, on this machine or on any cloud.",
)

TemplateArg = Annotated[str, typer.Argument(help="TOSCA template file (YAML).", show_default=False)]
InputOpt = Annotated[Optional[list[str]], typer.Option(
    "-i", "--input", help="An input value, KEY=VALUE; repeatable. Overrides --inputs.", show_default=False)]
InputsFileOpt = Annotated[Optional[str], typer.Option(
    "--inputs", help="A YAML file of input values.", show_default=False)]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="Never fetch remote imports; refuse those not bundled or cached.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (see docs/PLAN_FORMAT.md).")]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Refuse what is only warned about (a duplicate key, an outdated version).")]
ExternalPlaybooksOpt = Annotated[bool, typer.Option(
    "--allow-external-playbooks", help="Run playbooks from outside dodas's own and the template's directory "
                                       "(other paths, http(s) URLs).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dodas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """dodas: one TOSCA template, one command, a working platform."""


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
        typer.echo(f"{template}: valid ({len(p.model.nodes)} nodes, {len(p.instances)} instances, "
                   f"{len(p.waves)} waves)")
        if unknown:
            typer.echo(f"  inputs without a value, checked as any value of their type: {', '.join(unknown)} "
                       "(plan and up need them)")
        from dodas.model.support import known_only_nodes
        for node, why in known_only_nodes(p.model).items():
            typer.echo(f'  node "{node}" ({p.model.nodes[node].type}) is known but dodas cannot deploy it: {why}')


@app.command()
def plan(template: TemplateArg, input: InputOpt = None, inputs: InputsFileOpt = None,
         offline: OfflineOpt = False,
         provider: Annotated[Optional[str], typer.Option(
             "--provider", "-p", help="Also check that this provider can deploy it.", show_default=False)] = None,
         overcommit: Annotated[bool, typer.Option("--overcommit", help="With --provider: accept machines "
                                                  "beyond the provider's capacity.")] = False,
         json_out: JsonOpt = False, allow_external_playbooks: ExternalPlaybooksOpt = False,
         strict: StrictOpt = False) -> None:
    """Show what a deployment would create: instances, their needs, waves, deferred values."""
    from dodas import services
    from dodas.cli import render

    p = services.plan(template, input, inputs, offline=offline, allow_external_playbooks=allow_external_playbooks,
                      strict=strict)
    _warn(p)
    if provider:
        from dodas.errors import DodasError
        from dodas.providers import get_provider

        checked = get_provider(provider)
        checked.overcommit = overcommit
        problems = checked.preflight(p.model)
        if problems:
            raise DodasError(f"provider {provider} cannot deploy this template:\n  " + "\n  ".join(problems))
    if json_out:
        _print_json(p.to_json())
    else:
        render.plan(p)


NameArg = Annotated[str, typer.Argument(help="Deployment name.", show_default=False)]
#: `dodas status` exit code of a deployment with a dead service (README, "Exit codes")
DEGRADED = 5


@app.command()
def up(template: TemplateArg,
       name: Annotated[Optional[str], typer.Option("--name", "-n", help="Deployment name (default: the "
                                                   "template file's name).", show_default=False)] = None,
       input: InputOpt = None, inputs: InputsFileOpt = None,
       provider: Annotated[Optional[str], typer.Option("--provider", "-p", help="Provider to deploy on "
                                                       "(default: local).", show_default=False)] = None,
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
       quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
       json_out: JsonOpt = False, allow_external_playbooks: ExternalPlaybooksOpt = False,
       strict: StrictOpt = False) -> None:
    """Deploy a template, or bring an existing deployment in line with it."""
    from dodas.cli import progress, render
    from dodas.services import deploy, read

    make = progress.factory(quiet=quiet or json_out)
    try:
        result = deploy.up(template, name=name, pairs=input, inputs_file=inputs, provider_name=provider,
                           parallelism=parallelism, reporter_factory=make, offline=offline,
                           max_providers=max_providers, keep_failed=keep_failed, overcommit=overcommit,
                           allow_external_playbooks=allow_external_playbooks, strict=strict)
    finally:
        make.close()
    _warn(result.plan)
    outs = read.outputs(result.name)
    if json_out:
        _print_json({"name": result.name, "status": result.status, "changed": result.changed, "outputs": outs})
    else:
        typer.echo(f"{result.name}: {result.status}" + ("" if result.changed else " (nothing to change)"))
        render.outputs(outs, result.name)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List deployments."""
    from dodas.cli import render
    from dodas.services import read

    deps = read.list_deployments()
    _print_json(deps) if json_out else render.deployments(deps)


@app.command()
def status(name: NameArg, json_out: JsonOpt = False) -> None:
    """A deployment's state, its instances, and whether each service is alive.

    Exits 5 when the deployment is degraded (a service it started is dead), so
    that scripts and monitors see it without parsing the output."""
    from dodas.cli import render
    from dodas.services import read

    st = read.status(name)
    _print_json(st) if json_out else render.status(st)
    if st.get("degraded"):
        raise typer.Exit(DEGRADED)


@app.command()
def outputs(name: NameArg,
            show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Show sensitive outputs "
                                                       "(tokens) instead of masking them.")] = False,
            json_out: JsonOpt = False) -> None:
    """A deployment's outputs (URLs, tokens)."""
    from dodas.cli import render
    from dodas.services import read

    outs = read.outputs(name, show_secrets=show_secrets)
    _print_json(outs) if json_out else render.outputs(outs, name, hint=not show_secrets)


@app.command()
def logs(name: NameArg,
         node: Annotated[Optional[str], typer.Argument(help="Only this node's instances.",
                                                       show_default=False)] = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
         json_out: JsonOpt = False) -> None:
    """A deployment's events, oldest first."""
    import time

    from dodas.cli import render
    from dodas.services import read

    last = 0
    while True:
        _, evs = read.events(name, node, after_id=last)
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
            parallelism: Annotated[int, typer.Option("--parallelism")] = 10,
            quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False) -> None:
    """Stop and delete everything a deployment made. Safe to repeat."""
    from dodas.cli import progress
    from dodas.services import deploy, read

    read_status = read.status(name)
    if not yes:
        if not sys.stdin.isatty():
            from dodas.errors import DodasError
            raise DodasError(f'destroying "{name}" needs confirmation: run with --yes')
        typer.confirm(f'Destroy "{name}" ({len(read_status["instances"])} instances)?', abort=True)
    make = progress.factory(quiet=quiet)
    try:
        deploy.destroy(name, parallelism=parallelism, reporter_factory=make)
    finally:
        make.close()
    typer.echo(f"{name}: DELETE_COMPLETE")


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
                                                             "(default: NAME.kubeconfig).", show_default=False)] = None
               ) -> None:
    """Write the admin kubeconfig of a deployment's Kubernetes cluster to a file (mode 0600)."""
    from dodas.services import read

    conf = read.kubeconfig(name)
    path = output or f"{name}.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(conf)
    os.chmod(path, 0o600)
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
                                                   "into (made 0700; the file is 0600).")] = "spark-conf") -> None:
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
    typer.echo(f"wrote {path} (use: SPARK_CONF_DIR={output} pyspark)")


@app.command()
def unlock(name: NameArg,
           force: Annotated[bool, typer.Option("--force", help="Clear it even if its holder may be alive (a "
                                               "holder on another host cannot be checked).")] = False) -> None:
    """Clear a deployment's lock left by a dodas that died (refused while it runs)."""
    from dodas.services import deploy

    held = deploy.unlock(name, force=force)
    typer.echo(f"{name}: unlocked" + (f" (was held by {held})" if held else " (it was not locked)"))


def _warn(p: object) -> None:
    for w in getattr(getattr(p, "model", None), "warnings", []):
        sys.stderr.write(f"{w.file}:{w.line}:{w.col}: warning: {w.message}\n")


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def main() -> None:
    """Entry point: every DodasError becomes its message and exit code, never a traceback.

    Typer runs in standalone mode, so usage errors exit 2 with its own message."""
    from dodas.errors import DodasError, TemplateError, environment_problem

    try:
        app()
    except DodasError as exc:
        if isinstance(exc, TemplateError) and "--json" in sys.argv:
            _print_json({"valid": False, "errors": [d.to_dict() for d in exc.diagnostics]})
            sys.stderr.write(f"{exc.message}\n")
        elif isinstance(exc, TemplateError):
            sys.stderr.write(f"{exc.message}\n")
        else:
            sys.stderr.write(f"error: {exc.message}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("DODAS_DEBUG"):
            raise
        problem = environment_problem(exc)
        if problem is not None:  # a full or read-only disk: the machine's problem, not dodas's
            sys.stderr.write(f"error: {problem}\n")
            sys.exit(1)
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n"
                         "This is a bug in dodas; run again with DODAS_DEBUG=1 for details.\n")
        sys.exit(70)
