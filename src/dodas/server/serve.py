"""Running `dodas server`: configuration, then uvicorn over the application."""

from __future__ import annotations

import os
from collections.abc import Callable


def run(config_file: str | None, *, bind: str | None = None, workers: int | None = None,
        echo: Callable[[str], None] = print) -> None:
    import uvicorn

    from dodas.server import config
    from dodas.server.app import create_app

    if bind:
        os.environ["DODAS_SERVER_BIND"] = bind
    cfg = config.load(config_file)
    if workers is not None:
        cfg.workers = workers
    app = create_app(cfg)  # refuses a non-loopback bind without issuers
    if not cfg.authenticated:
        echo(f"dodas server on http://{cfg.host}:{cfg.port} WITHOUT authentication (loopback only: every caller "
             "is the local operator)")
    else:
        echo(f"dodas server on http://{cfg.host}:{cfg.port}; trusted issuers: "
             + ", ".join(i.url for i in cfg.issuers))
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
