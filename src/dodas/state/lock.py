"""The deployment lock: one `up` or `destroy` at a time per deployment.

The lock is a column of the deployment row, taken with a conditional UPDATE so
that the database arbitrates between processes (and, later, servers). The owner
is "host:pid:process-start-time": a lock whose process is gone (or whose pid was
reused by another process) on this host is stale and is taken over, with an event
saying so; a lock held from another host can only be cleared by `dodas unlock`.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from dodas.errors import DodasError
from dodas.state.models import Deployment


class LockedError(DodasError):
    exit_code = 3


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def me() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def is_stale(owner: str) -> bool:
    """True when the owner is a process of this host that no longer runs."""
    try:
        host, pid_s, start = owner.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return True
    if host != socket.gethostname():
        return False
    if not os.path.exists(f"/proc/{pid}"):
        return True
    return start != "?" and _start_time(pid) != start


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


def describe_holder(name: str, owner: str | None, since: datetime | None) -> str:
    host, pid = "?", "?"
    if owner:
        parts = owner.rsplit(":", 2)
        if len(parts) == 3:
            host, pid = parts[0], parts[1]
    when = since.strftime("%Y-%m-%d %H:%M:%S UTC") if since else "an unknown time"
    return (f'deployment "{name}" is locked: another dodas (pid {pid} on {host}) has been changing it since '
            f'{when}. Wait for it to finish; if that process is gone, run "dodas unlock {name}".')


def release(session: Session, dep_id: str, owner: str | None = None) -> None:
    owner = owner or me()
    session.execute(update(Deployment).where(Deployment.id == dep_id, Deployment.lock_owner == owner)
                    .values(lock_owner=None, lock_acquired_at=None))
    session.commit()


def force_release(session: Session, dep_id: str) -> None:
    session.execute(update(Deployment).where(Deployment.id == dep_id)
                    .values(lock_owner=None, lock_acquired_at=None))
    session.commit()
