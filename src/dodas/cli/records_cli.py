"""`dodas kubeconfig`, `spark-conf`, `refresh`, `unlock` and `forget`: what a
deployment hands out and what keeps its records true, locally or through a
server (cli/backend.py says where; a server refuses `unlock`, saying why)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from dodas.cli.common import JsonOpt, NameArg, print_json


def register(app: typer.Typer) -> None:
    app.command()(refresh)
    app.command()(kubeconfig)
    app.command("spark-conf")(spark_conf)
    app.command()(unlock)
    app.command()(forget)


def refresh(name: NameArg, json_out: JsonOpt = False) -> None:
    """Ask the provider what really exists and record the drift.

    Machines gone and services dead are recorded; `plan` then shows them and `up` repairs them."""
    from dodas.cli.backend import backend

    drift = backend().refresh(name)
    if json_out:
        print_json(drift)
        return
    for iid in drift["missing"]:
        typer.echo(f"  {iid}: its machine is gone (the next up creates it again)")
    for iid, dead in drift["dead_services"].items():
        typer.echo(f"  {iid}: not running: {', '.join(dead)}")
    n = drift["checked"]
    typer.echo(f"{name}: {n} machine{'s' if n != 1 else ''} checked, "
               + ("drift recorded; see `dodas plan`" if drift["drift"] else "no drift"))


def _write_private(path: str, text: str) -> None:
    """A file only its owner reads (mode 0600 even when it existed before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def kubeconfig(name: NameArg,
               output: Annotated[Optional[str], typer.Option("--output", "-o", help="File to write "
                                                             "(default: NAME.kubeconfig).", show_default=False)] = None,
               json_out: JsonOpt = False) -> None:
    """Write the admin kubeconfig of a deployment's Kubernetes cluster to a file (mode 0600)."""
    from dodas.cli.backend import backend

    conf = backend().kubeconfig(name)
    path = output or f"{name}.kubeconfig"
    _write_private(path, conf)
    if json_out:
        print_json({"name": name, "path": os.path.abspath(path), "mode": "0600"})
        return
    typer.echo(f"wrote {path} (use: KUBECONFIG={path} kubectl get nodes)")


def spark_conf(name: NameArg,
               output: Annotated[str, typer.Option("--output", "-o", help="Directory to write spark-defaults.conf "
                                                   "into (made 0700; the file is 0600).")] = "spark-conf",
               json_out: JsonOpt = False) -> None:
    """Write a spark-defaults.conf with a Spark deployment's master URL and secret, for
    PySpark programs and spark-submit outside it (SPARK_CONF_DIR=DIR)."""
    from dodas.cli.backend import backend

    conf = backend().spark_conf(name)
    os.makedirs(output, mode=0o700, exist_ok=True)
    path = os.path.join(output, "spark-defaults.conf")
    _write_private(path, conf)
    if json_out:
        print_json({"name": name, "path": os.path.abspath(path), "conf_dir": os.path.abspath(output),
                    "mode": "0600"})
        return
    typer.echo(f"wrote {path} (use: SPARK_CONF_DIR={output} pyspark)")


def unlock(name: NameArg,
           force: Annotated[bool, typer.Option("--force", help="Clear it although its holder cannot be checked "
                                               "(it ran on another host); never for a live one of this host.")] = False,
           json_out: JsonOpt = False) -> None:
    """Clear a deployment's lock left by a dodas that died (refused while it runs; exit 6 when not locked)."""
    from dodas.cli.backend import backend

    done = backend().unlock(name, force)
    if json_out:
        print_json(done)
        return
    h = done["holder"]
    typer.echo(f"{name}: unlocked (was held by {h['owner']}): pid {h['pid'] if h['pid'] is not None else '?'} "
               f"on {h['host']}, holding it since {h['since'] or 'an unknown time'}")


def forget(name: NameArg, json_out: JsonOpt = False) -> None:
    """Drop the records of a destroyed deployment (DELETE_COMPLETE); refused (exit 6) for any other.

    Its row, instances, events, attempts and kept template go (on a server, its owner too: the
    name is free again); `dodas destroy` it first."""
    from dodas.cli.backend import backend
    from dodas.cli.render import plural

    done = backend().forget(name)
    if json_out:
        print_json(done)
        return
    n = done["removed"]
    typer.echo(f"{name}: forgotten, its records dropped ({plural(n['events'], 'event')}, "
               f"{plural(n['attempts'], 'attempt')}, {plural(n['instances'], 'instance')})")
