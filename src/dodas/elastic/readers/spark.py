"""Spark standalone: what waits and what each worker does, from the master's web UI.

Checked against a real master (the pyspark 4.3 wheel, see
tests/test_elastic_spark_reader.py and the recordings in tests/data/elastic/):

- `GET /json/` lists workers (id, host, cores, coresused, coresfree, memoryfree,
  state ALIVE/DEAD/DECOMMISSIONED, webuiaddress) and active applications, but an
  application's `cores` there is what it was *granted*, not what it asked for.
  What it still lacks is only on its HTML page, `GET /app/?appId=ID`:
  "Cores: 4 (2 granted, 2 left)" (or "Unlimited (2 granted)"). The master grants
  every free core that fits as soon as it can, so the cores "left" are exactly
  the cores that waiting applications need beyond what is free.
- Decommissioning: `POST /workers/kill/?host=H` exists only when the master runs
  with `spark.decommission.enabled true` (else HTTP 405), and accepts only
  requests from the master's own machine unless
  `spark.master.ui.decommission.allow.mode` is ALLOW (else 403); 404 when no
  worker has that host. (SIGPWR to a worker process decommissions it too, but
  kills a worker that runs without `spark.decommission.enabled`.) The master then lists the worker
  DECOMMISSIONED and gives it no new executors; executors already there are not
  killed (seen both ways: a driver with `spark.decommission.enabled` of its own
  kept giving them tasks until the application ended; one without it, as
  dodas's Jupyter kernels are today, let the running task finish and gave them
  no more), so the application loses nothing. The master's `coresused`
  for that worker is not updated when those executors end: whether anything
  still runs there is read from the worker's own `GET /json/` (`executors`).
- When an idle worker last had work: its own `GET /json/` names the applications
  its finished executors served (`finishedexecutors[].appid`); the master's
  `completedapps` say when each ended (`starttime` + `duration`, ms). The
  latest end among them is the worker's idle clock. Neither JSON has an
  executor's own end time, so an executor removed from an application that
  still runs, or an application the master no longer lists
  (`spark.deploy.retainedApplications`), leaves the time unknown (None: the
  autoscaler's clock then starts when it first sees the worker idle).

The UIs are read-only (`spark.ui.killEnabled false`) and unauthenticated: they
are reached on the deployment's own addresses only, with no secret.
"""

from __future__ import annotations

import re
import ssl
from typing import Any

import httpx

from dodas.elastic.workload import WorkerLoad, Workload, plural

#: "Cores: 4 (2 granted, 2 left)" / "Cores: Unlimited (0 granted)" on an application's page
_CORES = re.compile(r"Cores:\s*(?:</strong>)?\s*(\d+|Unlimited)\s*\((\d+) granted(?:,\s*(\d+) left)?\)", re.S)


_TLS: list[ssl.SSLContext] = []


def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: httpx builds a new one for
    each client otherwise (loading the CA bundle), which was most of a poll's CPU
    (about 45 ms of it, for a master that is usually plain http)."""
    if not _TLS:
        import certifi

        _TLS.append(ssl.create_default_context(cafile=certifi.where()))
    return _TLS[0]


class SparkError(RuntimeError):
    """The master could not be read, or refused a decommission."""


def app_cores(page: str) -> tuple[int | None, int, int]:
    """(cores asked for or None if unlimited, granted, left) from an application's HTML page."""
    m = _CORES.search(page)
    if not m:
        raise SparkError("no 'Cores:' line on the application's page (a Spark version dodas does not know?)")
    asked = None if m.group(1) == "Unlimited" else int(m.group(1))
    granted = int(m.group(2))
    left = int(m.group(3)) if m.group(3) is not None else 0
    return asked, granted, left


def app_ends(master: dict[str, Any]) -> dict[str, float | None]:
    """Each application the master lists -> when it ended (epoch seconds; None: it still runs)."""
    ends: dict[str, float | None] = {a["id"]: None for a in master.get("activeapps") or [] if "id" in a}
    for a in master.get("completedapps") or []:
        try:
            ends[a["id"]] = (int(a["starttime"]) + int(a["duration"])) / 1000.0
        except (KeyError, TypeError, ValueError):
            ends.setdefault(str(a.get("id")), None)
    return ends


def idle_since(worker: dict[str, Any] | None, ended: dict[str, float | None]) -> float | None:
    """When an idle worker last had work: the latest end of the applications its finished
    executors served; None when that cannot be known (an unknown or still running one)."""
    if worker is None or worker.get("executors"):
        return None
    apps = {e.get("appid") for e in worker.get("finishedexecutors") or []}
    if not apps:
        return None  # never had work: the autoscaler's own clock (it boots, then waits idle)
    times = [ended.get(a) for a in apps]
    if any(t is None for t in times):
        return None
    return max(t for t in times if t is not None)


class SparkReader:
    """Reads a Spark standalone master's web UI (e.g. http://10.0.0.4:8080)."""

    def __init__(self, master_ui_url: str, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = master_ui_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport  # tests replay recordings through httpx.MockTransport

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, transport=self.transport, follow_redirects=False,
                                 verify=_tls_context())

    async def _get_json(self, http: httpx.AsyncClient, url: str) -> Any:
        try:
            r = await http.get(url)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise SparkError(f"cannot read {url}: {e}") from e

    async def master_state(self) -> dict[str, Any]:
        async with self._client() as http:
            return await self._get_json(http, f"{self.url}/json/")

    async def _worker_json(self, http: httpx.AsyncClient, worker: dict[str, Any]) -> dict[str, Any] | None:
        """The worker's own `GET /json/` (None if it cannot be asked)."""
        ui = worker.get("webuiaddress")
        if not ui:
            return None
        try:
            r = await http.get(f"{ui.rstrip('/')}/json/")
            r.raise_for_status()
            found = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    async def _running_executors(self, http: httpx.AsyncClient, worker: dict[str, Any]) -> int | None:
        """How many executors the worker itself says it runs (None if it cannot be asked)."""
        found = await self._worker_json(http, worker)
        return None if found is None else len(found.get("executors") or [])

    async def read(self) -> Workload:
        async with self._client() as http:
            state = await self._get_json(http, f"{self.url}/json/")
            workers = await self._workers(http, state.get("workers") or [], app_ends(state))
            waiting_cores, waiting = 0, []
            for app in state.get("activeapps") or []:
                if app.get("state") not in ("WAITING", "RUNNING"):
                    continue
                try:
                    r = await http.get(f"{self.url}/app/", params={"appId": app["id"]})
                    r.raise_for_status()
                except httpx.HTTPError as e:
                    raise SparkError(f"cannot read application {app['id']}'s page: {e}") from e
                asked, granted, left = app_cores(r.text)
                if asked is None and granted == 0:
                    left = 1   # takes every core there is: one more worker starts it
                if left > 0:
                    waiting_cores += left
                    waiting.append(f'application "{app.get("name", "")}" ({app["id"]}) waits for '
                                   f'{plural(left, "core")} ({granted} granted)')
        return Workload(waiting_cores=waiting_cores, waiting=tuple(waiting), workers=tuple(workers))

    async def _workers(self, http: httpx.AsyncClient, listed: list[dict[str, Any]],
                       ended: dict[str, float | None] | None = None) -> list[WorkerLoad]:
        """The master's workers, one per host: a restarted worker, or a new machine at the
        address of one removed, registers anew while the master keeps the old entry listed
        (DECOMMISSIONED, then DEAD) for a while, in no set order; the host's ALIVE entry is its
        worker, else its DECOMMISSIONED one, a DEAD one only when it has no other. An idle
        ALIVE worker's `idle_since` from its finished executors' applications (`ended`)."""
        alive_hosts = {w["host"] for w in listed if w.get("state") == "ALIVE"}
        live_hosts = {w["host"] for w in listed if w.get("state") != "DEAD"}
        out = []
        for w in listed:
            state = w.get("state", "")
            if (state == "DEAD" and w["host"] in live_hosts) or (state != "ALIVE" and w["host"] in alive_hosts):
                continue
            used = int(w.get("coresused") or 0)
            if state == "DECOMMISSIONED":
                # the master's count is stale once executors end there: ask the worker
                running = await self._running_executors(http, w)
                used = 0 if not running else used
            since = None
            if state == "ALIVE" and used == 0 and ended is not None:
                since = idle_since(await self._worker_json(http, w), ended)
            out.append(WorkerLoad(id=w["id"], host=w["host"], busy=used > 0 and state != "DEAD",
                                  cores=int(w.get("cores") or 0), cores_used=used, state=state, idle_since=since))
        return out

    async def drain(self, worker: WorkerLoad) -> bool:
        """Decommission the worker at the master (idempotent); True once no executor runs there."""
        async with self._client() as http:
            state = await self._get_json(http, f"{self.url}/json/")
            entries = [w for w in state.get("workers") or [] if w["host"] == worker.host and w.get("state") != "DEAD"]
            if not entries:
                return True  # not (or no longer) registered: nothing of Spark runs there
            if any(w.get("state") != "DECOMMISSIONED" for w in entries):
                url = f"{self.url}/workers/kill/"
                try:
                    r = await http.post(url, params={"host": worker.host})
                except httpx.HTTPError as e:
                    raise SparkError(f"cannot ask {url} to decommission {worker.host}: {e}") from e
                if r.status_code == 405:
                    raise SparkError(f"the master at {self.url} does not decommission workers (HTTP 405 from "
                                     f"/workers/kill/): it needs spark.decommission.enabled true")
                if r.status_code == 403:
                    raise SparkError(f"the master at {self.url} refused to decommission {worker.host} (HTTP 403): "
                                     f"spark.master.ui.decommission.allow.mode LOCAL (the default) accepts only "
                                     f"requests from the master's own machine; ALLOW accepts any")
                if r.status_code == 404:
                    raise SparkError(f"the master at {self.url} has no worker on host {worker.host} to decommission")
                if r.status_code != 200:
                    raise SparkError(f"the master at {self.url} failed to decommission {worker.host} "
                                     f"(HTTP {r.status_code})")
            # decommissioned: done once the worker itself runs no executor (the master's count
            # if the worker cannot be asked)
            for w in entries:
                running = await self._running_executors(http, w)
                if running if running is not None else int(w.get("coresused") or 0):
                    return False
            return True
