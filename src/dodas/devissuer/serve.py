"""Running the development issuer: on loopback only, with a banner that says
it is NOT FOR PRODUCTION, in the foreground (`python -m dodas.devissuer`) or in
a thread (`start`, for tests and demos).

The listening socket is bound here, before uvicorn starts, so that `--port 0`
works: the issuer's URL (its `iss`) must name the port actually bound.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from dodas.devissuer.app import create_app
from dodas.devissuer.config import ConfigError, DevConfig, load
from dodas.devissuer.keys import SigningKeys
from dodas.devissuer.pages import BANNER
from dodas.devissuer.tokens import Issuer


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: this issuer has plain passwords and no defences."""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"refusing to listen on {host}: the development issuer is NOT FOR PRODUCTION and "
                         f"binds loopback only (127.0.0.1, ::1 or localhost)")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class Running:
    """An issuer serving in a thread of this process."""

    url: str
    issuer: Issuer
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start(cfg: DevConfig, keys: SigningKeys | None = None, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve in a daemon thread; returns once it answers."""
    check_loopback(host)
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    app, issuer = create_app(url, cfg, keys or SigningKeys())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="devissuer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the development issuer did not start")
        time.sleep(0.01)
    return Running(url, issuer, server, thread)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dodas.devissuer",
                                description=f"{BANNER}. An OIDC issuer for trying `dodas server` out.")
    p.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8400, help="0 picks a free port (default 8400)")
    p.add_argument("--config", type=Path, help="YAML with users: and clients: (see dodas/devissuer/config.py)")
    p.add_argument("--key-file", type=Path, help="RSA private key, PEM, mode 0600 (created when missing); "
                                                 "default: a new key for this run")
    args = p.parse_args(argv)
    try:
        check_loopback(args.host)
        cfg = load(args.config) if args.config else DevConfig()
        keys = SigningKeys.from_file(args.key_file)
        sock = _bind(args.host, args.port)
    except (ValueError, ConfigError, OSError) as exc:
        print(f"devissuer: {exc}", file=sys.stderr)
        return 2
    url = _url(args.host, sock.getsockname()[1])
    app, _issuer = create_app(url, cfg, keys)
    line = "*" * (len(BANNER) + 4)
    print(f"{line}\n* {BANNER} *\n{line}", file=sys.stderr)
    print(f"{len(cfg.users)} users, {len(cfg.clients)} clients; signing key {keys.current.kid}", file=sys.stderr)
    print(f"issuer: {url}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
    return 0
