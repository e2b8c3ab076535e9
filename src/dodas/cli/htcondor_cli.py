"""`dodas htcondor-root`: prepare the Debian 13 root with HTCondor that the local
provider runs a pool's daemons from where the machine has no HTCondor package
(see dodas.providers.htcondor_root)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("htcondor-root")
    def htcondor_root() -> None:
        """Prepare (once; cached by package version) a Debian 13 root with HTCondor
        for HTCondor pools on the local provider, and print its directory."""
        from dodas.services import htcondor_root as service

        typer.echo(service.prepare())
