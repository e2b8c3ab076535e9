"""Running `dodas server`: configuration, then uvicorn over the application.

`--dev-issuer` is for trying the server out on one's own machine: it starts the
development OIDC issuer (NOT FOR PRODUCTION, loopback only) beside the server
and trusts it, with one user, named after the operator's account, whose
password is generated for this run and written to a 0600 file (never printed),
in the admin group; the local provider is allowed, since the only user is the
machine's operator. Its clients: the command line's (device flow) and the web
dashboard's (authorization code with PKCE, back to PUBLIC_URL/web/callback).
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import secrets
from collections.abc import Callable
from typing import Any

from dodas import paths
from dodas.errors import DodasError

DEV_ISSUER_PORT = 8400
DEV_ADMIN_GROUP = "/dodas/admins"
DEV_LOGIN_FILE = "dev-issuer-login.txt"


#: how `run` hands its command line to the API processes when there are several
#: (each builds its application from the configuration file and the environment)
_CONFIG_FILE_ENV = "DODAS_SERVER_CONFIG_FILE"
_DEV_ISSUER_ENV = "DODAS_SERVER_DEV_ISSUER_URL"


def run(config_file: str | None, *, bind: str | None = None, workers: int | None = None,
        processes: int | None = None, dev_issuer: bool = False, echo: Callable[[str], None] = print) -> None:
    import uvicorn

    from dodas.server import config
    from dodas.server.app import create_app

    if bind:
        os.environ["DODAS_SERVER_BIND"] = bind
    if workers is not None:
        os.environ["DODAS_SERVER_WORKERS"] = str(workers)
    if processes is not None:
        os.environ["DODAS_SERVER_PROCESSES"] = str(processes)
    cfg = config.load(config_file)
    issuer = _start_dev_issuer(cfg, echo) if dev_issuer else None
    try:
        app = create_app(cfg)  # refuses a non-loopback bind without issuers
        if not cfg.authenticated:
            echo(f"dodas server on http://{cfg.host}:{cfg.port} WITHOUT authentication (loopback only: every caller "
                 "is the local operator)")
        else:
            echo(f"dodas server on http://{cfg.host}:{cfg.port}; trusted issuers: "
                 + ", ".join(i.url for i in cfg.issuers))
        if cfg.processes == 1:
            uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
            return
        # Several processes on one socket (uvicorn's supervisor restarts one that dies). They
        # share nothing but the state database: sessions, work queue and leases live there.
        echo(f"{cfg.processes} API processes, each with {cfg.workers} in-process worker(s)")
        os.environ[_CONFIG_FILE_ENV] = config_file or ""
        if issuer is not None:
            os.environ[_DEV_ISSUER_ENV] = issuer.url
        uvicorn.run("dodas.server.serve:app_from_environment", factory=True, workers=cfg.processes,
                    host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
    finally:
        if issuer is not None:
            issuer.stop()


def app_from_environment() -> Any:
    """The application of one of several API processes, configured as `run` was."""
    from dodas.server import config
    from dodas.server.app import create_app

    cfg = config.load(os.environ.get(_CONFIG_FILE_ENV) or None)
    if os.environ.get(_DEV_ISSUER_ENV):
        _trust_dev_issuer(cfg, os.environ[_DEV_ISSUER_ENV])
    return create_app(cfg)


def _trust_dev_issuer(cfg: Any, url: str) -> None:
    from dodas.server.auth import IssuerConfig

    cfg.issuers = [*cfg.issuers, IssuerConfig(url=url, audience="dodas")]
    cfg.admin_group = cfg.admin_group or DEV_ADMIN_GROUP
    cfg.allow_local = True


def _start_dev_issuer(cfg: Any, echo: Callable[[str], None]) -> Any:
    from dodas.devissuer.config import parse
    from dodas.devissuer.pages import BANNER
    from dodas.devissuer.serve import start

    try:
        loopback = cfg.host == "localhost" or ipaddress.ip_address(cfg.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise DodasError(f"--dev-issuer is for trying the server out on this machine: bind to 127.0.0.1, not "
                         f"{cfg.host}")
    user = _account()
    password = secrets.token_urlsafe(12)
    dev = parse({"audience": "dodas", "users": [{"username": user, "password": password,
                                                 "groups": ["/dodas", DEV_ADMIN_GROUP]}],
                 "clients": [{"client_id": cfg.cli_client_id}, _dashboard_client(cfg)]})
    port = int(os.environ.get("DODAS_DEV_ISSUER_PORT") or DEV_ISSUER_PORT)
    try:
        running = start(dev, host="127.0.0.1", port=port)
    except OSError as exc:
        raise DodasError(f"the development issuer cannot listen on 127.0.0.1:{port} ({exc.strerror}): set "
                         "DODAS_DEV_ISSUER_PORT to a free port") from None
    login = paths.config_dir() / DEV_LOGIN_FILE
    paths.write_private(login, f"issuer: {running.url}\nusername: {user}\npassword: {password}\n")
    _trust_dev_issuer(cfg, running.url)
    echo(f"{BANNER}: development issuer on {running.url}; log in as {user!r} with the password in {login} "
         f"(`dodas --server http://{cfg.host}:{cfg.port} login`)")
    return running


def _dashboard_client(cfg: Any) -> dict[str, Any]:
    """The web dashboard's public client (authorization code with PKCE), sent back
    to /web/callback wherever browsers reach this server."""
    base = (cfg.dashboard.public_url or f"http://{cfg.host}:{cfg.port}").rstrip("/")
    return {"client_id": cfg.dashboard.client_id, "redirect_uris": [f"{base}/web/callback"]}


def _account() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return name if name.isidentifier() else "operator"
