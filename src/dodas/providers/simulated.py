"""The `simulated` provider: for tests and benchmarks only, never for real work.

It makes no machine at all: a "server" is a record in a JSON file (so that it
outlives the dodas process, as a cloud's servers do), created and deleted after a
configurable latency and failing at a configurable rate. Failures behave like a
real cloud's: some fail before anything exists, some after the server was made
(a timeout on the way back), which is what tests that nothing leaks must face.

    - name: sim
      type: simulated
      create_latency: 0.5     # seconds per create
      delete_latency: 0.1
      failure_rate: 0.3       # of creates (and of deletes, unless delete_failure_rate says otherwise)
      transient: true         # failures are retried by the engine (else permanent)
      seed: 42                # optional, for repeatable runs
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import random
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

from dodas import paths
from dodas.providers.base import ComputeRequest, Machine, Provider, ProviderError
from dodas.providers.config import ProviderConfig


class SimulatedProvider(Provider):
    host_kind = "simulated"

    def __init__(self, cfg: ProviderConfig) -> None:
        self.name = cfg.name
        o = cfg.options
        self.create_latency = float(o.get("create_latency", 0.0))
        self.delete_latency = float(o.get("delete_latency", 0.0))
        self.failure_rate = float(o.get("failure_rate", 0.0))
        self.delete_failure_rate = float(o.get("delete_failure_rate", self.failure_rate))
        self.transient = bool(o.get("transient", True))
        self.rng = random.Random(o.get("seed"))
        self.retry_base = float(o.get("retry_base", 0.05))
        self.file = paths.data_dir() / "simulated" / f"{cfg.name}.json"

    def preflight(self, model: Any) -> list[str]:
        return [f'node "{n.name}" has operations to run, but simulated machines cannot be configured '
                "(the simulated provider is for tests and benchmarks of the engine)"
                for n in model.nodes.values() if not n.is_compute and any(
                    op.implementation for op in n.operations.values())]

    # -- the "cloud" -----------------------------------------------------------
    @contextmanager
    def _servers(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.file.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.file.read_text()) if self.file.exists() else {}
                yield data
                tmp = self.file.with_suffix(".part")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def all_servers(self) -> dict[str, dict[str, Any]]:
        with self._servers() as s:
            return dict(s)

    def _fails(self, rate: float | None = None) -> bool:
        rate = self.failure_rate if rate is None else rate
        return rate > 0 and self.rng.random() < rate

    def _find(self, servers: dict[str, dict[str, Any]], dep: str, inst: str) -> tuple[str, dict] | None:
        for sid, s in servers.items():
            if s["tags"].get("dodas:deployment") == dep and s["tags"].get("dodas:instance") == inst:
                return sid, s
        return None

    # -- the contract ----------------------------------------------------------
    async def create(self, req: ComputeRequest) -> Machine:
        with self._servers() as servers:
            found = self._find(servers, req.deployment_id, req.instance_id)
        if found:
            return self._machine(*found)
        if self.create_latency:
            await asyncio.sleep(self.create_latency)
        fail = self._fails()
        if fail and self.rng.random() < 0.5:
            raise ProviderError(self.name, f"simulated failure creating {req.instance_id}", transient=self.transient)
        with self._servers() as servers:
            found = self._find(servers, req.deployment_id, req.instance_id)
            if found is None:
                sid = uuid.uuid4().hex[:12]
                n = len(servers) + 2
                servers[sid] = {"address": f"192.0.2.{n % 250 + 2}",
                                "tags": {"dodas:deployment": req.deployment_id, "dodas:instance": req.instance_id},
                                "cpus": req.spec.num_cpus, "mem_mib": req.spec.mem_mib}
                found = (sid, servers[sid])
        if fail:  # the server exists, but the answer never came back
            raise ProviderError(self.name, f"simulated timeout after creating {req.instance_id}",
                                transient=self.transient)
        return self._machine(*found)

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        with self._servers() as servers:
            found = self._find(servers, deployment_id, instance_id)
        return self._machine(*found) if found else None

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        if self.delete_latency:
            await asyncio.sleep(self.delete_latency)
        if self._fails(self.delete_failure_rate):
            raise ProviderError(self.name, f"simulated failure deleting {instance_id}", transient=self.transient)
        with self._servers() as servers:
            found = self._find(servers, deployment_id, instance_id)
            if found:
                del servers[found[0]]

    async def resources(self, deployment_id: str) -> list[str]:
        with self._servers() as servers:
            return sorted(sid for sid, s in servers.items() if s["tags"].get("dodas:deployment") == deployment_id)

    async def purge(self, deployment_id: str) -> None:
        if self._fails(self.delete_failure_rate):
            raise ProviderError(self.name, "simulated failure listing servers", transient=self.transient)
        with self._servers() as servers:
            for sid in [sid for sid, s in servers.items() if s["tags"].get("dodas:deployment") == deployment_id]:
                del servers[sid]

    def _machine(self, sid: str, s: dict[str, Any]) -> Machine:
        return Machine(provider_id=sid, public_address=s["address"], private_address=s["address"],
                       connection="simulated", facts={"num_cpus": s.get("cpus"), "mem_mib": s.get("mem_mib")})


def server_count(cfg_name: str) -> int:
    f = paths.data_dir() / "simulated" / f"{cfg_name}.json"
    return len(json.loads(f.read_text())) if f.exists() else 0

