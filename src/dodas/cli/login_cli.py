"""`dodas login` and `dodas logout`: the user's login at the OIDC issuer a
server trusts, for the commands that work through it (client/tokens.py keeps
the refresh token; this module only picks the issuer and client and talks)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from dodas.errors import DodasError


def _server_login_settings() -> tuple[str | None, str | None]:
    """The issuer and client id the server (--server / DODAS_SERVER) names, if one is set."""
    url = os.environ.get("DODAS_SERVER", "").strip()
    if not url:
        return None, None
    from dodas.cli.backend import connect

    info = connect(url).how_to_log_in()
    issuers = info.get("issuers") or []
    if not info.get("authenticated") or not issuers:
        raise DodasError(f"the server {url} runs without authentication: there is nothing to log in to")
    if len(issuers) > 1:
        raise DodasError(f"the server {url} trusts several issuers ({', '.join(issuers)}): name one, "
                         "`dodas login ISSUER_URL`")
    return issuers[0], info.get("client_id")


def register(app: typer.Typer) -> None:
    @app.command()
    def login(issuer: Annotated[Optional[str], typer.Argument(metavar="ISSUER_URL", help="The OIDC issuer (default: "
                                                              "the one the server trusts).", show_default=False)]
              = None,
              client_id: Annotated[Optional[str], typer.Option("--client-id", help="The public client registered "
                                                               "for dodas at the issuer (default: the server's, "
                                                               "else dodas-cli).", show_default=False)] = None,
              ) -> None:
        """Log in with the device flow: open the page it names, enter the code; the
        refresh token is kept in a private file and used by every later command."""
        from dodas.client import tokens

        named, named_client = _server_login_settings() if issuer is None or client_id is None else (None, None)
        issuer = issuer or named
        if not issuer:
            raise DodasError("name the issuer (`dodas login ISSUER_URL`) or the server (--server URL / "
                             "DODAS_SERVER), which names its issuer")
        tokens.login(issuer, client_id or named_client or "dodas-cli", print_fn=lambda m: typer.echo(m, err=True))
        typer.echo(f"Logged in to {tokens.normalise(issuer)}.", err=True)

    @app.command()
    def logout(issuer: Annotated[Optional[str], typer.Argument(metavar="ISSUER_URL", help="The issuer (default: the "
                                                               "server's, or the only login).", show_default=False)]
               = None) -> None:
        """Forget the login (and revoke its refresh token at the issuer)."""
        from dodas.client import tokens

        if issuer is None:
            issuer = _server_login_settings()[0]
        if issuer is None:
            try:
                issuer = tokens.issuer_for(None)  # the only stored login
            except tokens.TokenError as exc:
                if "several issuers" in exc.message:
                    raise
                typer.echo("Not logged in.", err=True)
                return
        if tokens.logout(issuer):
            typer.echo(f"Logged out of {tokens.normalise(issuer)}.", err=True)
        else:
            typer.echo(f"Not logged in to {tokens.normalise(issuer)}.", err=True)
