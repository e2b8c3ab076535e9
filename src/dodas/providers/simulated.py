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
      delete_transient: true  # the same for deletes only (default: transient)
      seed: 42                # optional, for repeatable runs
      quota: {instances: 4, cores: 8}   # optional: a project's quota, as a cloud's
      create_hold: /tmp/hold  # optional: while this file exists, every create waits before it
                              # finishes, so a test holds a creation mid-way, whatever the
                              # machine's load, and releases it by removing the file

A quota is checked at preflight as OpenStack's provider checks its project's
compute limits (and in its words): what the plan's machines need, beside the
servers the provider holds for other deployments, must fit; a deployment's own
servers count as available to it. It lets a test see a chosen provider refuse.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

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
        self.delete_transient = bool(o.get("delete_transient", self.transient))
        self.rng = random.Random(o.get("seed"))
        self.retry_base = float(o.get("retry_base", 0.05))
        self.create_hold = Path(o["create_hold"]) if o.get("create_hold") else None
        self.root = paths.data_dir() / "simulated" / cfg.name
        quota = o.get("quota") or {}
        self.quota = {k: int(quota[k]) for k in ("instances", "cores") if quota.get(k) is not None}

    def preflight(self, model: Any) -> list[str]:
        return self.host_problems(model) + self._quota_problems(model) + [
            f'node "{n.name}" has operations to run, but simulated machines cannot be configured '
            "(the simulated provider is for tests and benchmarks of the engine)"
            for n in model.nodes.values() if not n.is_compute and any(
                op.implementation for op in n.operations.values())]

    def _quota_problems(self, model: Any) -> list[str]:
        if not self.quota:
            return []
        need = {"instances": 0, "cores": 0}
        for n in model.nodes.values():
            if n.compute is not None:
                k = model.instance_count(n.name)
                need["instances"] += k
                need["cores"] += k * (n.compute.num_cpus or 1)
        used = {"instances": 0, "cores": 0}
        for f in self.root.glob("*/*.json"):
            if self.deployment_id and f.parent.name == paths.component(self.deployment_id):
                continue
            try:
                server = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            used["instances"] += 1
            used["cores"] += int(server.get("cpus") or 1)
        label = {"instances": "instances", "cores": "vcpus"}
        return [f"provider {self.name}: quota exceeded: the deployment needs {need[k]} {label[k]}, {used[k]} are in "
                f"use and the project may use {cap}" for k, cap in self.quota.items() if need[k] + used[k] > cap]

    # -- the "cloud": one small file per server, so every call costs the same
    # however many servers there are ---------------------------------------------
    def _path(self, dep: str, inst: str) -> Path:
        return self.root / paths.component(dep) / f"{paths.instance_component(inst)}.json"

    def _read(self, dep: str, inst: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(dep, inst).read_text())
        except (OSError, ValueError):
            return None

    def _fails(self, rate: float | None = None) -> bool:
        rate = self.failure_rate if rate is None else rate
        return rate > 0 and self.rng.random() < rate

    # -- the contract ----------------------------------------------------------
    async def create(self, req: ComputeRequest) -> Machine:
        found = self._read(req.deployment_id, req.instance_id)
        if found:
            return self._machine(found["id"], found)
        if self.create_latency:
            await asyncio.sleep(self.create_latency)
        while self.create_hold and self.create_hold.exists():  # held by a test: no machine until released
            await asyncio.sleep(0.1)
        fail = self._fails()
        if fail and self.rng.random() < 0.5:
            raise ProviderError(self.name, f"simulated failure creating {req.instance_id}", transient=self.transient)
        path = self._path(req.deployment_id, req.instance_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        sid = uuid.uuid4().hex[:12]
        server = {"id": sid, "address": f"192.0.2.{int(sid[:4], 16) % 250 + 2}",
                  "tags": {"dodas:deployment": req.deployment_id, "dodas:instance": req.instance_id},
                  "cpus": req.spec.num_cpus, "mem_mib": req.spec.mem_mib}
        tmp = path.with_suffix(f".{sid}.part")
        tmp.write_text(json.dumps(server))
        try:
            os.link(tmp, path)  # atomic "create if absent": a racing create keeps the first server
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        found = self._read(req.deployment_id, req.instance_id) or server
        if fail:  # the server exists, but the answer never came back
            raise ProviderError(self.name, f"simulated timeout after creating {req.instance_id}",
                                transient=self.transient)
        return self._machine(found["id"], found)

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        found = self._read(deployment_id, instance_id)
        return self._machine(found["id"], found) if found else None

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        if self.delete_latency:
            await asyncio.sleep(self.delete_latency)
        if self._fails(self.delete_failure_rate):
            raise ProviderError(self.name, f"simulated failure deleting {instance_id}",
                                transient=self.delete_transient)
        self._path(deployment_id, instance_id).unlink(missing_ok=True)
        self._tidy(deployment_id)

    async def resources(self, deployment_id: str) -> list[str]:
        d = self.root / deployment_id
        return sorted(json.loads(f.read_text())["id"] for f in d.glob("*.json")) if d.is_dir() else []

    async def purge(self, deployment_id: str) -> None:
        if self._fails(self.delete_failure_rate):
            raise ProviderError(self.name, "simulated failure listing servers", transient=self.delete_transient)
        d = self.root / deployment_id
        for f in d.glob("*.json") if d.is_dir() else []:
            f.unlink(missing_ok=True)
        self._tidy(deployment_id)

    def _tidy(self, deployment_id: str) -> None:
        try:
            (self.root / deployment_id).rmdir()
        except OSError:
            pass

    def _machine(self, sid: str, s: dict[str, Any]) -> Machine:
        return Machine(provider_id=sid, public_address=s["address"], private_address=s["address"],
                       connection="simulated", facts={"num_cpus": s.get("cpus"), "mem_mib": s.get("mem_mib")})


def server_count(cfg_name: str) -> int:
    """How many servers of ours the simulated provider holds (tests, benchmarks)."""
    return len(list((paths.data_dir() / "simulated" / cfg_name).glob("*/*.json")))

