"""An internal service for the SSRF tests: an HTTP listener on a loopback address
that records every connection made to it (before any request is read), and
answers the routes a test gives it. What it answers carries `INTERNAL`, a marker
that nothing the attacker sees may quote. `listener` is a fixture (a plugin of
tests/conftest.py): listener(address="127.0.0.1") -> a started Listener."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

#: every way of writing an address of the server itself in a URL: names, short,
#: decimal, hexadecimal and octal IPv4, IPv6 and IPv4-mapped IPv6, unspecified
LOOPBACK_FORMS = ("127.0.0.1", "localhost", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "[::ffff:127.0.0.1]",
                  "[::1]", "0.0.0.0", "[::]", "[::ffff:7f00:1]")
#: in every body an internal listener serves: never to appear in what a user is told
INTERNAL = "INTERNAL-SERVICE-ANSWER-5c1e"


@dataclass
class Hit:
    peer: str
    path: str = ""
    agent: str = ""


@dataclass
class Listener:
    address: str
    port: int = 0
    #: path -> (status, headers, body)
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    connections: list[str] = field(default_factory=list)
    requests: list[Hit] = field(default_factory=list)

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.address}:{self.port}{path}"

    def route(self, path: str, body: bytes | str = f"secret: {INTERNAL}\n", status: int = 200,
              headers: dict[str, str] | None = None) -> str:
        self.routes[path] = (status, headers or {}, body.encode() if isinstance(body, str) else body)
        return self.url(path)

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        return self.route(path, b"", status, {"Location": to})


def start(address: str = "127.0.0.1") -> tuple[Listener, ThreadingHTTPServer]:
    listener = Listener(address)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            listener.requests.append(Hit(self.client_address[0], self.path, self.headers.get("User-Agent", "")))
            status, headers, body = listener.routes.get(self.path, (404, {}, f"no {INTERNAL}".encode()))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def verify_request(self, request: object, client_address: object) -> bool:
            listener.connections.append(str(client_address))  # counted before anything is read
            return True

    server = Server((address, 0), Handler)
    listener.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return listener, server


@pytest.fixture
def listener() -> Iterator:
    """listener(address="127.0.0.1") -> a Listener serving until the test ends."""
    servers: list[ThreadingHTTPServer] = []

    def make(address: str = "127.0.0.1") -> Listener:
        found, server = start(address)
        servers.append(server)
        return found
    yield make
    for s in servers:
        s.shutdown()
        s.server_close()
