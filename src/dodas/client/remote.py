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
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx

from dodas.errors import DodasError, Diagnostic, TemplateError, no_deployment_message

#: HTTP status -> the CLI's exit code for the same failure (README, "Exit codes")
EXIT = {401: 1, 403: 1, 404: 4, 409: 3, 413: 1, 422: 1}


#: how long a broken event stream is tried again before giving up (a server restarting after a crash)
RECONNECT_S = 600.0


class _Broken(Exception):
    """An event stream that ended or failed without the server saying it was done."""


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
            raise self._named(_error(r))
        return r.json() if r.content else None

    def _named(self, exc: DodasError) -> DodasError:
        """A deployment the caller cannot see is named with those they can, as the
        local state names its own (the server names none, for it tells no one's)."""
        unknown = re.fullmatch(r'no deployment named "(.+)"', exc.message)
        if unknown is None:
            return exc
        try:
            items = self.call("GET", "/api/v1/deployments", params={"limit": 1000})["items"]
        except DodasError:
            return exc
        made = sorted((d for d in items if d.get("created_at")), key=lambda d: d["created_at"])
        return RemoteError(no_deployment_message(unknown.group(1), [d["name"] for d in made][:21]), 4)

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

    def events(self, name: str, after_id: int = 0, *, node: str | None = None, since: datetime | None = None,
               tail: int | None = None) -> list[dict[str, Any]]:
        """Events as `read.events` gives them: after an id, of a NODE or NODE[i], since
        a time (sent in UTC), the last `tail`; every page of them."""
        params: dict[str, Any] = {"after": after_id, "limit": 10_000}
        if node:
            params["node"] = node
        if since is not None:
            params["since"] = since.astimezone(timezone.utc).isoformat()
        if tail is not None:
            params["tail"] = tail
        out: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", f"/api/v1/deployments/{name}/events", params=params)["items"]
            out.extend(page)
            if tail is not None or len(page) < params["limit"]:
                return out
            params["after"] = page[-1]["id"]

    def stream(self, name: str, after_id: int = 0, *, node: str | None = None, follow: bool = False,
               on_break: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
        """Events as they happen: until the server says the deployment has no more
        work, or (`follow`) until the caller stops reading. A stream that breaks
        (the server restarted, the network dropped) is opened again from the last
        event received (Last-Event-ID), so none is missed or shown twice;
        `on_break` is told why, once per outage. After RECONNECT_S seconds
        without reaching the server it gives up with an error."""
        last, broken_since = after_id, None
        while True:
            try:
                for kind, data in self._frames(name, last, node, follow):
                    broken_since = None  # connected again
                    if kind == "open":
                        continue
                    if kind == "end":
                        return
                    event = json.loads(data)
                    last = event["id"]
                    yield event
                return
            except (httpx.HTTPError, _Broken) as exc:
                why = f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.HTTPError) else str(exc)
                now = time.monotonic()
                if broken_since is None:
                    broken_since = now
                    if on_break is not None:
                        on_break(why)
                elif now - broken_since > RECONNECT_S:
                    raise RemoteError(f"the event stream of {name} broke and the server at {self.base} did not "
                                      f"answer again within {RECONNECT_S:g} s: {why}") from None
                time.sleep(min(5.0, 0.5 + (now - broken_since) / 4))

    def _frames(self, name: str, after_id: int, node: str | None, follow: bool) -> Iterator[tuple[str, str]]:
        """(event kind, data) of one connection to the event stream."""
        params: dict[str, Any] = {"after": after_id, "follow": follow}
        if node:
            params["node"] = node
        headers = {**self._headers(), "Last-Event-ID": str(after_id)}
        with self.http.stream("GET", f"{self.base}/api/v1/deployments/{name}/events/stream", params=params,
                              headers=headers, timeout=httpx.Timeout(self.http.timeout.connect, read=None)) as r:
            if r.status_code >= 500:
                raise _Broken(f"the server answered {r.status_code}")
            if r.status_code >= 400:
                r.read()
                raise _error(r)
            yield "open", ""
            kind, ended = "message", False
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    ended = kind == "end"
                    yield kind, line[5:]
                    kind = "message"
            if not ended:  # the server went away without saying it was done
                raise _Broken("the stream ended before the server said the work was done")

    def providers(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/providers")

    def kubeconfig(self, name: str) -> str:
        return self.call("GET", f"/api/v1/deployments/{name}/kubeconfig")["text"]

    def spark_conf(self, name: str) -> str:
        return self.call("GET", f"/api/v1/deployments/{name}/spark-conf")["text"]

    def refresh(self, name: str) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/refresh")

    def plan(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/plan", json=body)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/api/v1/deployments", json=body)

    def apply(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/apply", json=body)

    def scale(self, name: str, node: str, count: int) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/scale", json={"node": node, "count": count})

    def scale_plan(self, name: str, node: str, count: int) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/deployments/{name}/scale/plan", json={"node": node, "count": count})

    def autoscale_control(self, name: str, action: str, instance: str) -> str:
        """`dodas autoscale NAME --disable/--enable/--drain INSTANCE`: the sentence
        services/autoscale_control.control returns locally. Its one 409 is a
        deployment not in the state the operation needs (exit 6, as locally)."""
        try:
            return self.call("POST", f"/api/v1/deployments/{name}/elastic",
                             json={"action": action, "instance": instance})["said"]
        except RemoteError as exc:
            if exc.exit_code == EXIT[409]:
                raise RemoteError(exc.message, 6) from None
            raise

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
