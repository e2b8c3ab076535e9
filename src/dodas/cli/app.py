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
from dodas.cli import autoscale_cli, deploy_cli, htcondor_cli, login_cli, read_cli, records_cli
from dodas.cli.common import MODE as _MODE
from dodas.cli.common import ExternalPlaybooksOpt, InputOpt, InputsFileOpt, JsonOpt, OfflineOpt, StrictOpt, TemplateArg
from dodas.cli.common import print_json as _print_json
from dodas.cli.common import warn as _warn

app = typer.Typer(
    name="dodas", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Deploy analysis platforms (Spark + Jupyter, Kubernetes, HTCondor, caches) from a TOSCA "
         "template, on this machine or on any cloud.",
)

def _version(value: bool) -> None:
    if value:
        typer.echo(f"dodas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False,
          server_url: Annotated[Optional[str], typer.Option("--server", metavar="URL", help="Work through this dodas "
                                                            "server (also DODAS_SERVER): every command that reads "
                                                            "or changes a deployment.",
                                                            show_default=False)] = None) -> None:
    """dodas: one TOSCA template, one command, a working platform."""
    if server_url:
        os.environ["DODAS_SERVER"] = server_url


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


deploy_cli.register(app)  # the commands in the order of --help: a deployment's life first
read_cli.register(app)
records_cli.register(app)


@app.command()
def providers(check: Annotated[bool, typer.Option("--check", help="Authenticate to each provider.")] = False,
              json_out: JsonOpt = False) -> None:
    """The configured providers, best rank first (and, with --check, whether each answers); through a
    server, those you may deploy on."""
    from dodas.cli import render
    from dodas.cli.backend import backend

    rows = backend().providers(check)
    _print_json(rows) if json_out else render.providers(rows)
    if check and any(r.get("check") and not r["check"]["ok"] for r in rows):
        raise typer.Exit(1)


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
            "tail": "N", "parallelism": "N", "processes": "N", "max_providers": "N", "output": "PATH",
            "provider": "PROVIDER"}


def _command() -> object:
    """The click command of `app`, with each option's value named in --help (FILE,
    DURATION, N, ...) and arguments shown by their name alone, without Typer's
    <str> type column (the name says what an argument is)."""
    import typer.main

    cmd = typer.main.get_command(app)
    for sub in [cmd, *getattr(cmd, "commands", {}).values()]:
        helper = sub.get_help_option(typer.Context(sub, info_name=sub.name))
        for param in [*sub.params, *([helper] if helper is not None else [])]:
            if param.param_type_name == "option" and not getattr(param, "is_flag", False):
                if param.metavar is None:
                    param.metavar = METAVARS.get(param.name or "", (param.name or "value").upper())
            elif param.param_type_name == "argument":
                if param.metavar is None:
                    param.metavar = (param.name or "value").upper()
                param.type = _untitled(param.type)
    return cmd


def _untitled(ptype: object) -> object:
    """`ptype` (a Click parameter type) answering no metavar of its own: Typer's help
    then prints none in the type column, where it would print <str>. Click's
    ParamType.get_metavar is its public hook for exactly that."""
    cls = type(ptype)
    bare = type(f"Untitled{cls.__name__}", (cls,), {"get_metavar": lambda self, param, ctx=None: ""})
    out = object.__new__(bare)
    out.__dict__.update(vars(ptype))
    return out


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
           processes: Annotated[Optional[int], typer.Option("--processes", help="API processes sharing the "
                                                            "port and the state database (default 1; as many as "
                                                            "cores for heavy read load).", show_default=False)]
           = None,
           dev_issuer: Annotated[bool, typer.Option("--dev-issuer", help="Also start the development OIDC issuer "
                                                    "(NOT FOR PRODUCTION, loopback only) and trust it: to try the "
                                                    "server out on this machine.")] = False) -> None:
    """Serve the REST API (docs at /docs), with workers that carry out the deployments."""
    from dodas.server import serve

    serve.run(config, bind=bind, workers=workers, processes=processes, dev_issuer=dev_issuer, echo=typer.echo)


login_cli.register(app)
autoscale_cli.register(app)
htcondor_cli.register(app)


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
