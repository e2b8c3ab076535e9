"""What a workload system says about itself, in the one shape every reader returns.

The autoscaler decides from two facts only: how many cores waiting work needs
beyond what is free, and what each worker is doing. Spark, Kubernetes and
HTCondor say these in their own words; each reader (dodas.elastic.readers)
translates them into a `Workload`, so the decision code (dodas.elastic.decide)
is the same for all three and can be tested from recordings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class WorkerLoad:
    """One worker as the workload system sees it.

    `host` is what matches it to a dodas instance (its private or public
    address, or its host name): the reader's own `id` means nothing to dodas.
    """

    id: str
    host: str
    busy: bool
    cores: int
    cores_used: int
    state: str = ""
    #: when it last had work, in the workload system's own records (epoch seconds: Spark, the end of the
    #: last application that ran there; HTCondor, when its slots became unclaimed); None when the system
    #: cannot say, and then the autoscaler's idle clock starts when it first sees the worker idle
    idle_since: float | None = None

    @property
    def alive(self) -> bool:
        """Whether it takes work: registered and neither dead nor being drained.

        A booting instance stops counting as booting once its worker is alive.
        """
        return self.state.upper() in ALIVE_STATES


#: the states, in each system's words, of a worker that registered and takes work
ALIVE_STATES = frozenset({"ALIVE", "READY", "UNCLAIMED", "CLAIMED", "MATCHED", "OWNER"})


@dataclass(frozen=True)
class Workload:
    """What waits and what each worker does, at one poll."""

    waiting_cores: int
    waiting: tuple[str, ...]
    workers: tuple[WorkerLoad, ...]

    def worker_at(self, host: str) -> WorkerLoad | None:
        """The worker whose host is this address (None if the system does not list one)."""
        for w in self.workers:
            if w.host == host:
                return w
        return None


@runtime_checkable
class Reader(Protocol):
    """Reads one workload system; drains one of its workers before dodas removes it."""

    async def read(self) -> Workload:
        """Poll the system once."""
        ...

    async def drain(self, worker: WorkerLoad) -> bool:
        """Start (or continue) a graceful removal; True once nothing runs there any more.

        Called again at every poll until it returns True: it must be idempotent.
        """
        ...


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 application', '2 applications': reasons are read by people."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
