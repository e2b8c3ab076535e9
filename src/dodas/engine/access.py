"""Which way dodas reaches each machine of a deployment over SSH.

A machine with a public address is reached there. One with only a private address
is reached through a bastion: the provider's `bastion:` option when it names one,
else the deployment's own bastion (the plan's `bastion`: its first public machine,
the front end in DODAS's templates); with `bastion: false`, or when the deployment
has no public machine, directly (this machine is inside the private network).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from dodas.configure.runner import Host
from dodas.providers.base import Machine, Provider
from dodas.ssh_access import Endpoint, wait_for_login


def jump_for(machine: Machine, provider: Provider, bastion: Machine | None) -> Endpoint | None:
    """The bastion to go through to reach `machine`, or None to go directly."""
    if machine.connection != "ssh" or machine.public_address or provider.bastion is False:
        return None
    if isinstance(provider.bastion, Endpoint):
        return provider.bastion
    if bastion is None or bastion is machine or not bastion.public_address \
            or bastion.provider_id == machine.provider_id:
        return None
    return bastion.endpoint()


def describe(target: Endpoint, jump: Endpoint | None) -> str:
    where = f"{target.user + '@' if target.user else ''}{target.address}:{target.port}"
    return f"{where} through {jump.address}:{jump.port}" if jump else where


async def wait_reachable(machine: Machine, jump: Endpoint | None, workdir: Path, timeout: float) -> str | None:
    """Wait until dodas can log in to the machine (through `jump`, with both host keys
    checked); None when it can, else why not."""
    target = machine.endpoint()
    reason = await wait_for_login(target, jump, workdir, timeout)
    if reason is None:
        return None
    return f"cannot log in to {describe(target, jump)} within {timeout:.0f}s: {reason}"


async def reach(hosts: Iterable[Host], reached: set[str], workdir: Path, timeout: float) -> tuple[Host, str] | None:
    """Wait until each SSH host of a run can be logged in to, side by side (through
    its bastion, both host keys checked), skipping those in `reached` (provider ids
    already logged in to in this run, which it extends); the first that cannot, and why."""
    waiting = [h for h in hosts if h.machine is not None and h.machine.connection == "ssh"
               and h.machine.provider_id not in reached]
    if not waiting:
        return None
    reasons = await asyncio.gather(*(wait_reachable(h.machine, h.jump, workdir, timeout)  # type: ignore[arg-type]
                                     for h in waiting))
    for h, why in zip(waiting, reasons):
        if why is None:
            reached.add(h.machine.provider_id)  # type: ignore[union-attr]
        else:
            return h, why
    return None
