"""Where a command's answers come from: this machine's state (services/) or a
`dodas server` (client/remote.py, DODAS_SERVER or --server).

Every command that reads or changes a deployment asks `backend()` and calls the
same method either way; each method returns the same data (the local services'
shapes, which the server's API answers too), so that the text, the `--json`
and the exit codes of a command cannot differ between the two. What a server
does not offer is refused here, with the reason, before anything local is read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol

from dodas.errors import UsageError

#: how often `logs -f` asks the local state for new events
POLL_S = 1.0


class Backend(Protocol):
    """What the commands ask, locally or of a server."""

    remote: bool

    def list_deployments(self, include_deleted: bool) -> list[dict[str, Any]]: ...
    def status(self, name: str) -> dict[str, Any]: ...
    def outputs(self, name: str, show_secrets: bool) -> dict[str, Any]: ...
    def events(self, name: str, node: str | None, since: datetime | None, tail: int | None,
               after: int = 0) -> list[dict[str, Any]]: ...
    def follow(self, name: str, node: str | None, since: datetime | None, after: int) -> Iterator[dict[str, Any]]: ...
    def kubeconfig(self, name: str) -> str: ...
    def spark_conf(self, name: str) -> str: ...
    def refresh(self, name: str) -> dict[str, Any]: ...
    def unlock(self, name: str, force: bool) -> dict[str, Any]: ...
    def forget(self, name: str) -> dict[str, Any]: ...
    def providers(self, check: bool) -> list[dict[str, Any]]: ...


def server_url() -> str | None:
    """The server to work through (--server or DODAS_SERVER), or None."""
    return os.environ.get("DODAS_SERVER", "").strip() or None


def connect(url: str) -> Any:
    """A client of the server at `url` (client/remote.py), with the caller's token
    asked for on each request (client/tokens.py refreshes it)."""
    from dodas.client import tokens
    from dodas.client.remote import Remote as Client

    return Client(url, lambda: tokens.token_for_server(url))


def backend() -> Backend:
    url = server_url()
    return Local() if url is None else Remote(connect(url))


class Local:
    """This machine's state, through services/."""

    remote = False

    def list_deployments(self, include_deleted: bool) -> list[dict[str, Any]]:
        from dodas.services import read
        return read.list_deployments(include_deleted=include_deleted)

    def status(self, name: str) -> dict[str, Any]:
        from dodas.services import read
        return read.status(name)

    def outputs(self, name: str, show_secrets: bool) -> dict[str, Any]:
        from dodas.services import read
        return read.outputs(name, show_secrets=show_secrets)

    def events(self, name: str, node: str | None, since: datetime | None, tail: int | None,
               after: int = 0) -> list[dict[str, Any]]:
        from dodas.services import read
        return read.events(name, after_id=after, since=since, tail=tail, **read.event_filter(name, node))[1]

    def follow(self, name: str, node: str | None, since: datetime | None, after: int) -> Iterator[dict[str, Any]]:
        """New events as the state records them, until the reader stops (Ctrl-C)."""
        while True:
            for e in self.events(name, node, since, None, after):
                after = e["id"]
                yield e
            time.sleep(POLL_S)

    def kubeconfig(self, name: str) -> str:
        from dodas.services import read
        return read.kubeconfig(name)

    def spark_conf(self, name: str) -> str:
        from dodas.services import read
        return read.spark_conf(name)

    def refresh(self, name: str) -> dict[str, Any]:
        from dodas.services.refresh import refresh
        return refresh(name).to_json()

    def unlock(self, name: str, force: bool) -> dict[str, Any]:
        from dodas.services import lifecycle
        return lifecycle.unlock(name, force=force)

    def forget(self, name: str) -> dict[str, Any]:
        from dodas.services import lifecycle
        return lifecycle.forget(name)

    def providers(self, check: bool) -> list[dict[str, Any]]:
        from dodas.services import read
        return read.providers(check=check)


class Remote:
    """A `dodas server`, through its REST API (client/remote.py)."""

    remote = True

    def __init__(self, client: Any, on_break: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.on_break = on_break or stream_broke

    def list_deployments(self, include_deleted: bool) -> list[dict[str, Any]]:
        """The rows `dodas list` shows locally (the API adds each one's owner and group)."""
        return [{k: v for k, v in d.items() if k not in ("owner", "group")}
                for d in self.client.list_deployments(include_deleted)]

    def status(self, name: str) -> dict[str, Any]:
        return self.client.status(name)

    def outputs(self, name: str, show_secrets: bool) -> dict[str, Any]:
        return self.client.outputs(name, show_secrets)

    def events(self, name: str, node: str | None, since: datetime | None, tail: int | None,
               after: int = 0) -> list[dict[str, Any]]:
        return self.client.events(name, after, node=node, since=since, tail=tail)

    def follow(self, name: str, node: str | None, since: datetime | None, after: int) -> Iterator[dict[str, Any]]:
        """The server's event stream, kept open when no work is left (a later
        destroy shows too), reconnected from the last event when it breaks."""
        for e in self.client.stream(name, after, node=node, follow=True, on_break=self.on_break):
            if since is None or datetime.fromisoformat(e["time"]) >= since:
                yield e

    def kubeconfig(self, name: str) -> str:
        return self.client.kubeconfig(name)

    def spark_conf(self, name: str) -> str:
        return self.client.spark_conf(name)

    def refresh(self, name: str) -> dict[str, Any]:
        return self.client.refresh(name)

    def unlock(self, name: str, force: bool) -> dict[str, Any]:
        raise UsageError(f"through a server, unlock is not needed and not offered: its workers hold a deployment's "
                         f"lock under a lease, and when a worker dies another takes the lock over once the lease "
                         f"expires, stopping what the dead one left running (see `dodas status {name}`); "
                         "unlock is for a command line's own state (unset DODAS_SERVER)")

    def forget(self, name: str) -> dict[str, Any]:
        return self.client.forget(name)

    def providers(self, check: bool) -> list[dict[str, Any]]:
        """The server's providers the caller may deploy on; their credentials stay the server's."""
        if check:
            raise UsageError("through a server, providers --check is not offered: the server holds the providers' "
                             "credentials and checks them itself; without --check, the providers you may deploy on")
        return [{**r, "credentials": "(the server's)", "image_hosts": []} for r in self.client.providers()]


def stream_broke(why: str) -> None:
    """Say on stderr that the event stream broke and is being opened again."""
    import sys
    sys.stderr.write(f"the event stream broke ({why}): reconnecting, from the last event seen\n")
    sys.stderr.flush()
