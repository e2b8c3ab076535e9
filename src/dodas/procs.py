"""Finding, checking and stopping processes by identity, never by pid alone.

A pid is reused by the kernel once its process is gone, so a recorded pid may
name an unrelated program by the time dodas looks at it again (after a reboot,
after days of uptime, or on a busy host). A process is therefore identified by
its pid *and* its start time, and nothing is reported alive or signalled unless
both still match.

The start time is kept as clock ticks since boot (field 22 of /proc/PID/stat),
the form `dodas_service` records on hosts that have no psutil and the form lock
owners always had, so that every record compares with every other. Here it is
computed through psutil, whose own signalling calls also re-check the pid
against reuse at the moment they send.

dodas marks what it starts: ansible-playbook runs carry DODAS_RUN=<deployment
id>, services DODAS_MACHINE=<machine directory>. Markers are inherited by every
child (Spark executors, notebook kernels), so a crash that loses pid files, or a
kill -9 of dodas itself, never loses track of a process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import NamedTuple

import psutil

#: clock ticks per second, the unit of a recorded start time
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: what an unknown start time looks like in old records ("?" in old lock owners)
UNKNOWN = ("", "?", "None", "none", "null")


def known(start: object) -> bool:
    """Whether a recorded start time is there (old records have none)."""
    return bool(start) and str(start) not in UNKNOWN


class Identity(NamedTuple):
    """A process as it was when it was seen: its pid and when it started."""

    pid: int
    #: clock ticks since boot, as a string (field 22 of /proc/PID/stat)
    start: str


def _ticks(p: psutil.Process) -> str:
    """The start time of a psutil process in clock ticks since boot.

    psutil gives seconds since the epoch (boot time + ticks / CLK_TCK); the boot
    time is read again around it so that a clock step in between is not mistaken
    for another process."""
    for _ in range(3):
        boot = psutil.boot_time()
        created = p.create_time()
        if psutil.boot_time() == boot:
            return str(round((created - boot) * CLK_TCK))
    return str(round((created - psutil.boot_time()) * CLK_TCK))


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def identify(pid: int) -> Identity | None:
    """The identity of the process that runs under `pid` now, or None."""
    try:
        p = psutil.Process(pid)
        if not _running(p):
            return None
        return Identity(pid, _ticks(p))
    except psutil.Error:
        return None


def _process(target: Identity | int) -> psutil.Process | None:
    """A psutil handle on the process `target` names, if it is still that process.

    A bare pid is taken to be whatever runs under it now (for callers that have
    just found it in /proc); an Identity must match its start time."""
    try:
        p = psutil.Process(int(target[0] if isinstance(target, Identity) else target))
        # an old record without a start time: the pid is all there is to go by
        if isinstance(target, Identity) and known(target.start) and _ticks(p) != str(target.start):
            return None  # the pid now names another process
        return p if _running(p) else None
    except psutil.Error:
        return None


def alive(target: Identity | int) -> bool:
    """Whether the process still runs (and, for an Identity, is still the same one)."""
    return _process(target) is not None


def running(pid: int, start: str | None) -> bool:
    """Whether a recorded process (pid, start time or None for old records) still runs."""
    return alive(Identity(pid, start or ""))


def owner(target: Identity) -> int | None:
    """The real uid of the process `target` names, if it still runs as that one:
    what a claim made in its name (loopback.py) is checked against."""
    p = _process(target)
    try:
        return p.uids().real if p is not None else None
    except psutil.Error:
        return None


def find_by_env(name: str, value: str, *, below: bool = False) -> list[Identity]:
    """Processes whose environment has name=value (or, with `below`, name=value/...)."""
    needle = f"{name}={value}".encode()
    out = []
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            with open(f"/proc/{p.pid}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        for item in env.split(b"\0"):
            if item == needle or (below and item.startswith(needle + b"/")):
                ident = identify(p.pid)
                if ident is not None:
                    out.append(ident)
                break
    return out


def _wait(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` for processes to end; return those left. A zombie has
    ended (its parent, not dodas, will reap it)."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _running(p)]
    while left:
        _gone, left = psutil.wait_procs(left, timeout=max(0.0, min(0.2, deadline - time.monotonic())))
        left = [p for p in left if _running(p)]
        if time.monotonic() >= deadline:
            break
    return left


def terminate(targets: Iterable[Identity | int], grace: float = 10.0) -> None:
    """TERM, then KILL whatever is left after `grace` seconds.

    Only processes whose identity still matches are signalled: psutil's
    terminate/kill check again, when they send, that the pid was not reused."""
    procs = [p for p in (_process(t) for t in targets) if p is not None]
    for step, wait in (("terminate", grace), ("kill", 5.0)):
        for p in procs:
            try:
                getattr(p, step)()
            except psutil.Error:
                pass
        procs = _wait(procs, wait)
        if not procs:
            return
