"""What the engine needs of the thing that runs a wave's operations.

The engine is handed its configurator as it is handed its provider
(services/deploy.py makes both): it calls `run` with the hosts and plays of a
wave and reads the result, and knows nothing of how the operations run.
configure/runner.py's AnsibleRunner is the one dodas uses; its events go to
the reporter its maker gave it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from dodas.configure.runner import Host, Play, RunResult


class Configurator(Protocol):
    #: a private directory of the deployment's runs; the engine keeps the SSH
    #: files of its login waits (engine/access.py) under it
    workdir: Path

    def run(self, phase: str, hosts: dict[str, Host], plays: list[Play]) -> RunResult:
        """Run the plays on the hosts, blocking (the engine calls it in a thread);
        failures and reports per instance in the result, never an exception for
        an operation that failed."""
        ...

    def close(self) -> None:
        """End what runs keep open for the next one (SSH connections); called by
        the engine when its run ends, still under the deployment lock."""
        ...

    def remove_leftovers(self) -> None:
        """Remove what runs that never ended left (their files hold secrets);
        called by the engine, which exists only under the deployment lock."""
        ...
