"""The deployment lock: one `up` or `destroy` at a time per deployment.

The lock is a column of the deployment row, taken with a conditional UPDATE so
that the database arbitrates between processes (and, later, servers). The owner
is "host:pid:process-start-time#thread": the thread (its native id) makes two
threads of one process (a server's worker destroying a deployment while its
autoscaler thread scales it) exclude each other, and only the thread holding the
lock takes it again (re-entrance: `lifecycle.destroy` waits for the lock, then
`deploy.destroy` takes it in the same thread). Everything that asks whether the
holder still runs looks at the process only (the part before "#"): a lock whose
process is gone (or whose pid was
reused by another process) on this host is stale and is taken over, with an event
saying so; a lock held from another host can only be cleared by `dodas unlock --force`
(whether that process still runs cannot be checked from here). `--force` never
clears the lock of a process of this host that still runs (`proven_alive`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dodas import procs
from dodas.errors import DodasError
from dodas.state.models import Deployment


class LockedError(DodasError):
    exit_code = 3


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, read from its owner string."""

    owner: str
    host: str
    pid: int | None
    start: str
    thread: str | None = None

    @property
    def process(self) -> str:
        """The owner without its thread: "host:pid:start", what liveness and take-over look at."""
        return process_of(self.owner)

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    @property
    def alive(self) -> bool | None:
        """True or False for a process of this host; None for another host's (it cannot be checked)."""
        if not self.local:
            return None
        if self.pid is None:
            return False
        return procs.running(self.pid, self.start)


def process_of(owner: str) -> str:
    """"host:pid:start#thread" -> "host:pid:start" (owners written before threads
    were named have no "#" and are their own process)."""
    return owner.split("#", 1)[0]


def holder(owner: str) -> Holder:
    """Parse "host:pid:start-time#thread" (the start time in clock ticks since boot; "?"
    in owners written when it could not be read, which compare by pid only; the
    thread is absent from owners written before it was recorded)."""
    proc, _, thread = owner.partition("#")
    try:
        host, pid_s, start = proc.rsplit(":", 2)
        return Holder(owner, host, int(pid_s), start, thread or None)
    except ValueError:
        return Holder(owner, owner, None, "?")


def process() -> str:
    """This process: "host:pid:start-time" (also the prefix of the server's lease owners)."""
    ident = procs.identify(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}:{ident.start if ident else '?'}"


def me() -> str:
    """This thread of this process: the lock's owner ("host:pid:start-time#thread")."""
    return f"{process()}#t{threading.get_native_id()}"


def proven_alive(h: Holder) -> bool:
    """True only when the holder is a process of this host that still runs with the
    pid and start time it recorded: the one case `dodas unlock --force` refuses.
    An old owner without a start time could be any process by now, so it is not."""
    return h.local and h.pid is not None and procs.known(h.start) and procs.running(h.pid, h.start)


def is_stale(owner: str) -> bool:
    """True when the owner is a process of this host that no longer runs (or whose
    pid now names another process); an unreadable owner is stale too."""
    h = holder(owner)
    return h.pid is None or h.alive is False


def acquire(session: Session, dep: Deployment, owner: str | None = None) -> str | None:
    """Take the lock or raise LockedError. Returns the stale owner taken over, if any."""
    owner = owner or me()
    now = datetime.now(timezone.utc)
    res = session.execute(update(Deployment).where(Deployment.id == dep.id, or_(
        Deployment.lock_owner.is_(None), Deployment.lock_owner == owner))
        .values(lock_owner=owner, lock_acquired_at=now))
    if res.rowcount == 1:
        session.commit()
        return None
    session.rollback()
    session.refresh(dep)
    held = dep.lock_owner
    if held and is_stale(held):
        res = session.execute(update(Deployment).where(Deployment.id == dep.id, Deployment.lock_owner == held)
                              .values(lock_owner=owner, lock_acquired_at=now))
        if res.rowcount == 1:
            session.commit()
            return held
        session.rollback()
        session.refresh(dep)
        held = dep.lock_owner
    raise LockedError(describe_holder(dep.name, held, dep.lock_acquired_at))


def acquire_waiting(session: Session, dep: Deployment, owner: str | None = None, timeout: float = 0.0,
                    poll: float = 0.5) -> str | None:
    """`acquire`, tried again every `poll` seconds until `timeout` seconds have
    passed (`--lock-timeout`): for `up` and `destroy`, which may wait for another
    dodas to finish. Returns the stale owner taken over, if any; after the
    timeout, LockedError names the holder (pid, host, since when) and how long
    this run waited. A timeout of 0 tries once, as `acquire`."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            return acquire(session, dep, owner)
        except LockedError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                if timeout > 0:
                    from dodas.durations import format_duration
                    raise LockedError(f"{exc.message} (waited {format_duration(timeout)} for it: --lock-timeout)") \
                        from None
                raise
        time.sleep(min(poll, left))


def describe_holder(name: str, owner: str | None, since: datetime | None) -> str:
    h = holder(owner or "?:?:?")
    pid = h.pid if h.pid is not None else "?"
    when = since.strftime("%Y-%m-%d %H:%M:%S UTC") if since else "an unknown time"
    gone = (f'if that process is gone, run "dodas unlock {name}"' if h.local else
            f'it runs on another host, which dodas cannot check from here: if that process is gone, run '
            f'"dodas unlock {name} --force"')
    who = (f"another operation of this same dodas (pid {pid} on {h.host}, thread {h.thread})"
           if h.thread and h.process == process() else f"another dodas (pid {pid} on {h.host})")
    return f'deployment "{name}" is locked: {who} has been changing it since {when}. Wait for it to finish; {gone}.'



def release(session: Session, dep_id: str, owner: str | None = None) -> None:
    owner = owner or me()
    session.execute(update(Deployment).where(Deployment.id == dep_id, Deployment.lock_owner == owner)
                    .values(lock_owner=None, lock_acquired_at=None))
    session.commit()


def force_release(session: Session, dep_id: str) -> None:
    session.execute(update(Deployment).where(Deployment.id == dep_id)
                    .values(lock_owner=None, lock_acquired_at=None))
    session.commit()


def take_over(session: Session, name: str, previous: str) -> bool:
    """Clear the lock of deployment `name` when a thread of process `previous`
    ("host:pid:start") still holds it: the server's worker that held it lost its
    lease (it died, froze, or handed the work back on shutdown), which proves,
    unlike a pid on another host, that it no longer works on the deployment.
    True when a lock was cleared; the UPDATE is conditional on the owner read,
    so a lock taken meanwhile by anyone else stays."""
    held = session.execute(select(Deployment.lock_owner).where(Deployment.name == name)).scalar_one_or_none()
    if not held or process_of(held) != process_of(previous):
        session.rollback()
        return False
    res = session.execute(update(Deployment).where(Deployment.name == name, Deployment.lock_owner == held)
                          .values(lock_owner=None, lock_acquired_at=None))
    session.commit()
    return res.rowcount == 1
