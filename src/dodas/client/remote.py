"""The CLI's view of a `dodas server`: the same answers the local services give,
fetched over the REST API (DODAS_SERVER=URL or --server).

Each method returns what the matching local service function returns, so the
CLI renders both the same way (and `--json` prints the same). Errors come back
as the server's `{"error": {"message": ...}}` and are raised as RemoteError with
the exit code the README gives the same failure locally. The access token is
asked for on each request (it may be refreshed in between) and is never part of
a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from dodas.errors import DodasError, Diagnostic, TemplateError

#: HTTP status -> the CLI's exit code for the same failure (README, "Exit codes")
EXIT = {401: 1, 403: 1, 404: 4, 409: 3, 413: 1, 422: 1}


class RemoteError(DodasError):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Remote:
    def __init__(self, url: str, token: Callable[[], str | None], timeout: float = 60.0) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.http = httpx.Client(timeout=timeout)

    # -- plumbing ----------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        tok = self.token()
        return {"Authorization": f"Bearer {tok}"} if tok else {}

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, self.base + path, headers=self._headers(), **kw)
        except httpx.HTTPError as exc:
            raise RemoteError(f"the dodas server at {self.base} cannot be reached: {type(exc).__name__}: "
                              f"{exc}") from None
        if r.status_code >= 400:
            raise _error(r)
        return r.json() if r.content else None

    # -- what the CLI asks -----------------------------------------------------------
    def list_deployments(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        items = self.call("GET", "/api/v1/deployments", params={"limit": 1000})["items"]
        return [i for i in items if include_deleted or i.get("status") != "DELETE_COMPLETE"]

    def status(self, name: str) -> dict[str, Any]:
        view = self.call("GET", f"/api/v1/deployments/{name}")
        view.pop("work", None)
        return view

    def outputs(self, name: str, show_secrets: bool = False) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/deployments/{name}/outputs", params={"show_secrets": show_secrets})

    def events(self, name: str, after_id: int = 0) -> list[dict[str, Any]]:
        return self.call("GET", f"/api/v1/deployments/{name}/events", params={"after": after_id})["items"]

    def stream(self, name: str, after_id: int = 0) -> Iterator[dict[str, Any]]:
        """Events as they happen, until the server says the deployment has no more work."""
        try:
            with self.http.stream("GET", f"{self.base}/api/v1/deployments/{name}/events/stream",
                                  params={"after": after_id}, headers=self._headers(), timeout=None) as r:
                if r.status_code >= 400:
                    r.read()
                    raise _error(r)
                kind = "message"
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        if kind == "end":
                            return
                        yield json.loads(line[5:])
                        kind = "message"
        except httpx.HTTPError as exc:
            raise RemoteError(f"the event stream of {name} broke: {type(exc).__name__}: {exc}") from None

    def plan(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/plan", json=body)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/api/v1/deployments", json=body)

    def apply(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/apply", json=body)

    def scale(self, name: str, node: str, count: int) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/scale", json={"node": node, "count": count})

    def destroy(self, name: str) -> dict[str, Any]:
        return self.call("DELETE", f"/api/v1/deployments/{name}")

    def forget(self, name: str) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/forget")

    def how_to_log_in(self) -> dict[str, Any]:
        """The server's issuers and the client id `dodas login` should use (asked without a token)."""
        try:
            r = self.http.get(f"{self.base}/api/v1/auth")
        except httpx.HTTPError as exc:
            raise RemoteError(f"the dodas server at {self.base} cannot be reached: {type(exc).__name__}: "
                              f"{exc}") from None
        if r.status_code != 200:
            raise _error(r)
        return r.json()

    def exists(self, name: str) -> bool:
        try:
            self.call("GET", f"/api/v1/deployments/{name}")
            return True
        except RemoteError as exc:
            if exc.exit_code == 4:
                return False
            raise


def _error(r: httpx.Response) -> DodasError:
    try:
        err = r.json().get("error") or {}
    except ValueError:
        err = {}
    message = err.get("message") or f"the server answered {r.status_code} {r.reason_phrase}"
    if err.get("diagnostics"):
        return TemplateError([Diagnostic(d["file"], d["line"], d["col"], d["message"]) for d in err["diagnostics"]])
    if r.status_code == 401:
        message += " (log in with `dodas login`, or set DODAS_TOKEN)"
    return RemoteError(message, EXIT.get(r.status_code, 1))
