"""Taking a deployment down: its instances (software first, then machines), then
whatever still carries its tag on every provider it was tried on.

The Engine holds a Teardown and hands it itself: removing shares the engine's
bookkeeping (rows, machines, the configurator and the reporter, how changes are
recorded), which `Books` names, and is kept apart because it has rules of its
own: best effort on software, since deleting a machine ends it anyway; never
"everything deleted" when a provider cannot say what is left; host keys of
deleted cloud machines forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from dodas import paths
from dodas.configure.runner import Host, Play, host_name
from dodas.engine.retry import with_retries
from dodas.engine.states import InstanceState
from dodas.model.deployment import UNDEPLOY_OPERATIONS, Instance
from dodas.providers.base import Machine, Provider, ProviderError
from dodas.ssh_access import Endpoint, forget_host_keys

if TYPE_CHECKING:
    from dodas.engine.configurator import Configurator
    from dodas.engine.context import RunContext
    from dodas.engine.engine import Reporter
    from dodas.state.store import Store

S = InstanceState


class Books(Protocol):
    """What a teardown uses of the engine it serves."""

    store: Store
    dep_id: str
    provider: Provider
    configurator: Configurator
    reporter: Reporter
    parallelism: int
    rows: dict[tuple[str, int], Any]
    machines: dict[tuple[str, int], Machine]
    ctx: RunContext | None

    def _save(self, inst: Instance, state: S, **fields: Any) -> None: ...

    def _drop(self, key: tuple[str, int]) -> None: ...

    async def _commit(self) -> None: ...

    def recording(self) -> AbstractContextManager[None]: ...

    def _jump(self, machine: Machine | None) -> Endpoint | None: ...


class Teardown:
    def __init__(self, books: Books) -> None:
        self.engine = books

    async def remove(self, keys: list[tuple[str, int]]) -> list[str]:
        """Stop and delete instances (software first, then their machines); best
        effort on the software side, since deleting the machine ends it anyway.
        Returns the problems met; a machine that cannot be deleted is one of them."""
        with self.engine.recording():
            return await self._remove(keys)

    async def _remove(self, keys: list[tuple[str, int]]) -> list[str]:
        problems: list[str] = []
        software = [k for k in keys if self.engine.rows[k].kind != "compute"]
        computes = [k for k in keys if self.engine.rows[k].kind == "compute"]
        if software:
            problems += await self._undeploy_software(software)
        sem = asyncio.Semaphore(self.engine.parallelism)

        async def delete(key: tuple[str, int]) -> str | None:
            inst = Instance(*key)
            async with sem:
                self.engine._save(inst, S.DELETING)
                row = self.engine.rows[key]
                await self.engine._commit()  # recorded before the provider is asked
                provider = self.engine.provider
                try:
                    await with_retries(lambda: provider.delete(self.engine.dep_id, inst.id, row.provider_id),
                                       base=provider.retry_base)
                except ProviderError as exc:
                    self.engine._save(inst, S.ERROR, error=str(exc))  # written with the next turn's changes
                    return f"{inst.id}: {exc}"
                machine = self.engine.machines.pop(key, None)
                if machine is not None and machine.connection == "ssh" and self.engine.provider.ephemeral_hosts:
                    forget_host_keys([(a, machine.ssh_port) for a in (machine.public_address, machine.private_address)
                                      if a])
                self.engine._drop(key)  # written with the next turn's changes, without holding a slot
                return None
        results = await asyncio.gather(*(delete(k) for k in computes))
        problems += [r for r in results if r]
        return problems

    async def _undeploy_software(self, keys: list[tuple[str, int]]) -> list[str]:
        hosts: dict[str, Host] = {}
        plays: dict[tuple[str, str], Play] = {}
        for op_name in UNDEPLOY_OPERATIONS:
            for key in keys:
                inst, row = Instance(*key), self.engine.rows[key]
                spec = (row.attributes.get("_undeploy") or {}).get(op_name) or {}
                impl, inputs = spec.get("implementation"), spec.get("inputs") or {}
                compute = self._compute_key_of(key)
                machine = self.engine.machines.get(compute) if compute else None
                if not impl or (compute is not None and machine is None):
                    continue
                hname = host_name(Instance(*compute) if compute else None)
                hosts.setdefault(hname, Host(hname, Instance(*compute) if compute else None, machine,
                                             self.engine._jump(machine)))
                workdir = machine.facts.get("workdir") if machine else None
                variables = {**inputs, "dodas_instance_dir": paths.node_dir(workdir, inst.node) if workdir else "",
                             "dodas_node": inst.node, "dodas_instance": inst.id,
                             "dodas_deployment_id": self.engine.dep_id,
                             "dodas_properties": row.attributes.get("_undeploy_properties") or {},
                             **(self.engine.provider.controller_variables() if compute is None else {})}
                play = plays.setdefault((inst.node, op_name), Play(inst.node, op_name, impl))
                play.targets[hname] = (inst, variables)
        for key in keys:
            self.engine._save(Instance(*key), S.DELETING)
        await self.engine._commit()  # recorded before Ansible runs
        result = await asyncio.to_thread(self.engine.configurator.run, "undeploy", hosts, list(plays.values()))
        problems = [f"{i.id}: {m}" for i, m in result.failures.items()]
        for key in keys:
            self.engine._drop(key)
        await self.engine._commit()
        return problems

    def _compute_key_of(self, key: tuple[str, int]) -> tuple[str, int] | None:
        """The machine a software row ran on: from the plan, or else the recorded host."""
        if self.engine.ctx is not None and key[0] in self.engine.ctx.model.nodes:
            c = self.engine.ctx.model.host_compute(key[0])
            return (c, key[1]) if c else None
        host = self.engine.rows[key].attributes.get("_compute")
        return tuple(host) if host else None  # type: ignore[return-value]

    async def destroy(self, others: Iterable[Provider] = ()) -> list[str]:
        """Remove every instance, then whatever still carries the deployment's tag:
        on this provider, and on `others` (providers earlier attempts of this
        deployment were made on, whose clean-up may have left something)."""
        with self.engine.recording():
            return await self._destroy(others)

    async def _destroy(self, others: Iterable[Provider]) -> list[str]:
        problems = await self.remove(list(self.engine.rows))

        async def purge(provider: Provider, label: str) -> list[str]:
            try:
                leftovers = await with_retries(lambda: provider.resources(self.engine.dep_id), base=provider.retry_base)
            except ProviderError as exc:  # cannot tell what is left: say so, never "everything deleted"
                return [f"cannot list what is left{label}: {exc}"]
            if not leftovers:
                return []
            self.engine.reporter.event(None, "delete", f"deleting {len(leftovers)} resource(s) found by tag{label}")
            try:
                await with_retries(lambda: provider.purge(self.engine.dep_id), base=provider.retry_base)
            except ProviderError as exc:
                if not any(str(exc) in p for p in problems):  # the same leftover is said once
                    return [str(exc)]
            return []
        problems += await purge(self.engine.provider, "")
        for other in others:
            if other.name != self.engine.provider.name:
                problems += await purge(other, f" on {other.name} (an earlier attempt's provider)")
        return problems
