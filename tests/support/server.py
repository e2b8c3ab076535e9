"""`dodas server` as the tests run it: a real server process on loopback with a
DODAS_HOME of its own, the simulated provider (no machine is made: its "servers"
are files under the data directory) and the shared development issuer
(support/issuer.py). `serve` and `server` are fixtures (plugins of tests/conftest.py);
`Server.as_` speaks the REST API as one user, `Server.call` the IM API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dodas.devissuer.serve import Running
from support import serverproc
from support.issuer import token

#: generous: only to tell "never" from "slow on a busy machine"
TIMEOUT_S = 120.0
API = "/api/v1/deployments"


def boxes(n: int = 1, cpus: int = 2, count: Any = "{get_input: n}", extra: str = "",
          secret_output: bool = False, max_instances: int | None = None) -> str:
    """One scalable compute node (input `n`, its count `count`, more of the scalable
    capability's properties in `extra`) and an output from its attributes: what the
    simulated provider deploys. `secret_output` adds an output that is sensitive by
    its name (admin_token); `max_instances` an elastic policy (Spark's workload)
    that may grow the node to that many."""
    secret = "\n    admin_token: {value: {get_attribute: [box, public_address]}}" if secret_output else ""
    if max_instances is not None:
        secret += ("\n  policies:\n    - grow:\n        type: tosca.policies.dodas.Elastic\n        targets: [box]\n"
                   f"        properties: {{min_instances: 1, max_instances: {max_instances}, workload: spark}}")
    return textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          inputs:
            n: {{type: integer, default: {n}}}
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {count}{extra}}}}}
                host: {{properties: {{num_cpus: {cpus}, mem_size: 1 GB}}}}
          outputs:
            address: {{value: {{get_attribute: [box, public_address]}}}}""") + secret + "\n"


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment for a server on `home`: none of the caller's dodas
    settings (server, token, database, issuer, inputs)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DODAS_SERVER", "DODAS_INPUT_")) and k not in (
               "DODAS_DB_URL", "DODAS_TOKEN", "OIDC_AGENT_ACCOUNT", "DODAS_ISSUER")}
    env["DODAS_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """A `dodas server` process."""

    url: str
    home: Path
    proc: subprocess.Popen
    log: Path
    issuer: Running | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    def as_(self, user: str | None) -> Api:
        """The REST API as `user` (None: without a token)."""
        tok = token(self.issuer, user) if user and self.issuer else None
        api = Api(self, tok)
        self.clients.append(api.http)
        return api

    def output(self) -> str:
        """Everything the server logged (to look for what must never be there)."""
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        """The end of the log, for a failed assertion's message."""
        return self.output()[-4000:]

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT_S)

    def records(self, dep_id: str, provider: str = "sim") -> list[Path]:
        """The simulated provider's servers of one deployment."""
        return sorted((self.home / "data" / "simulated" / provider / dep_id).glob("*.json"))

    # -- the IM API (/im) and plain calls of the REST API ----------------------------------
    def im_line(self, user: str) -> str:
        """`user`'s Authorization header in IM's form."""
        return f"type = InfrastructureManager; token = {token(self.issuer, user)}"

    def call(self, method: str, path: str, user: str | None = "alice", *, auth: str | None = None,
             accept: str | None = None, **kw: Any) -> httpx.Response:
        """An IM request: `auth` is the whole Authorization header (default: `user`'s IM line)."""
        headers = dict(kw.pop("headers", {}))
        if auth is not None:
            headers["Authorization"] = auth
        elif user is not None:
            headers["Authorization"] = self.im_line(user)
        if accept:
            headers["Accept"] = accept
        return httpx.request(method, self.url + path, headers=headers, timeout=TIMEOUT_S * 6, **kw)

    def v1(self, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + "/api/v1" + path, timeout=TIMEOUT_S,
                             headers={"Authorization": f"Bearer {token(self.issuer, user)}"}, **kw)

    def status(self, name: str, user: str = "alice") -> dict[str, Any]:
        r = self.v1(user, "GET", f"/deployments/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    def settled(self, name: str, user: str = "alice") -> dict[str, Any]:
        """The deployment's view once nothing is queued or running for it."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            view = self.status(name, user)
            if not view.get("work") and view["status"] != "QUEUED":
                return view
            if time.monotonic() > deadline:
                pytest.fail(f"{name} still {view['status']} after {TIMEOUT_S} s\n{self.tail()}")
            time.sleep(0.2)


class Api:
    """HTTP to the server as one caller."""

    def __init__(self, server: Server, tok: str | None) -> None:
        self.server = server
        self.token = tok
        self.http = httpx.Client(base_url=server.url, timeout=TIMEOUT_S,
                                 headers={"Authorization": f"Bearer {tok}"} if tok else {})

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(path, **kw)

    def create(self, name: str, template: str | None = None, **body: Any) -> httpx.Response:
        return self.post(API, json={"name": name, "template": template or boxes(),
                                    "template_name": f"{name}.yaml", **body})

    def names(self) -> set[str]:
        r = self.get(API)
        assert r.status_code == 200, r.text
        return {d["name"] for d in r.json()["items"]}

    def wait(self, name: str, want: tuple[str, ...] = ("CREATE_COMPLETE",)) -> dict[str, Any]:
        """Poll the deployment until nothing is queued or running for it, then
        assert its status is one of `want`."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            r = self.get(f"{API}/{name}")
            assert r.status_code == 200, r.text
            view = r.json()
            if not view.get("work") and view["status"] != "QUEUED":
                assert view["status"] in want, (view, self.server.tail())
                return view
            if time.monotonic() > deadline:
                pytest.fail(f"{name} still {view['status']} with work {view.get('work')} after {TIMEOUT_S} s\n"
                            + self.server.tail())
            time.sleep(0.2)

    def stream(self, name: str) -> tuple[int, list[tuple[str, str]]]:
        """The event stream, read to its end: (status, [(event, data)])."""
        frames: list[tuple[str, str]] = []
        with self.http.stream("GET", f"{API}/{name}/events/stream") as r:
            if r.status_code != 200:
                r.read()
                return r.status_code, [("error", r.text)]
            kind = "message"
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    frames.append((kind, line[5:].strip()))
                    if kind == "end":
                        break
                    kind = "message"
        return 200, frames


def start_server(home: Path, config: dict[str, Any], providers: list[dict[str, Any]],
                 issuer: Running | None) -> Server:
    """`dodas server` on `home` with the server configuration `config` and these providers."""
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "providers.yaml").write_text(json.dumps({"providers": providers}))
    conf = home / "server.json"  # YAML is a superset of JSON: the server reads it as it reads YAML
    conf.write_text(json.dumps(config))
    log = home / "server.log"
    log.write_text("")
    proc, url = serverproc.start(clean_env(home), log, "--config", str(conf), cwd=home)
    return Server(url, home, proc, log, issuer)


def server_config(issuer: Running, **over: Any) -> dict[str, Any]:
    """The server tests' configuration: trusts `issuer`; /cms operates on "sim", /atlas only reads."""
    return {"issuers": [{"url": issuer.url, "audience": "dodas"}],
            "admin_group": "/dodas/admins",
            "default_providers": ["sim"],
            "groups": {"/cms": {"providers": ["sim"], "operate": True},
                       "/atlas": {"providers": ["sim"], "operate": False}},
            "workers": 1,
            "lease_seconds": 10,
            **over}


#: the simulated provider: servers made and deleted within a fraction of a second
SIM = {"name": "sim", "type": "simulated", "rank": 1, "create_latency": 0.1, "delete_latency": 0.05}


@pytest.fixture
def serve(tmp_path, issuer) -> Iterator:
    """serve(providers=None, home=None, sim=None, **config) -> a running Server on a home
    of its own (or `home`), its configuration `server_config(**config)`, its providers
    `providers` or SIM updated with `sim`; every one started is stopped after the test."""
    started: list[Server] = []

    def start_one(providers: list[dict[str, Any]] | None = None, home: Path | None = None,
                  sim: dict[str, Any] | None = None, **over: Any) -> Server:
        s = start_server(home or tmp_path / f"server-home-{len(started)}", server_config(issuer, **over),
                         providers or [{**SIM, **(sim or {})}], issuer)
        started.append(s)
        return s
    yield start_one
    for s in started:
        s.stop()


@pytest.fixture
def server(serve) -> Server:
    """A server started with the defaults (see `serve`)."""
    return serve()
