"""Serve one WSGI application on 127.0.0.1, for Keystone and Placement, which are
WSGI-only: Debian runs them under uwsgi or Apache, the suite under the standard
library's server, one request at a time: their SQLite databases lock under
concurrent writers, and a handful of clients queue without harm (each request
is short and neither service calls itself).

Run by Debian's python3 (the services' own interpreter), not the suite's:
    python3 wsgi_serve.py PORT MODULE:FACTORY"""

from __future__ import annotations

import importlib
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The services log their own requests; the server's line is noise."""


def main() -> None:
    port, target = int(sys.argv[1]), sys.argv[2]
    module, factory = target.split(":")
    sys.argv = sys.argv[:1]  # Keystone's factory parses the command line as its own
    app = getattr(importlib.import_module(module), factory)()
    server = make_server("127.0.0.1", port, app, server_class=WSGIServer, handler_class=_Quiet)
    print("serving", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
