"""The server's work queue and deployment owners, in the state database.

The API records what a caller wants (`enqueue`) and returns; workers, in the
server's process or in processes of their own on other machines, `lease` items:
a lease is a row update (status, holder, expiry) made in one transaction, on
PostgreSQL with `SELECT ... FOR UPDATE SKIP LOCKED` so that workers polling at
once never wait on each other or take the same item. A worker heart-beats its
lease forward while it works; one that dies stops heart-beating, its lease
expires, and the next worker to poll takes the item over (`Lease.previous`
names the holder it replaces, so the worker can take over the deployment's lock
too). Items of one deployment run one at a time, in the order asked.

Times are the workers' clocks (UTC): machines sharing a database are expected
to keep them synchronised (NTP), as any lease scheme on wall time does; a lease
is tens of seconds, so skew of a second or two is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, union, update
from sqlalchemy.exc import IntegrityError

from dodas.state import db
from dodas.state.models import Deployment
from dodas.state.work_models import DeploymentAccess, WorkItem

#: statuses of work that is not finished
ACTIVE = ("queued", "running")
OPERATIONS = ("apply", "scale", "destroy")


@dataclass(frozen=True)
class Item:
    """A work item as read: a plain value, usable after its session closed."""

    id: int
    deployment_name: str
    operation: str
    payload: dict[str, Any]
    requested_by: str
    status: str
    error: str | None
    leases: int
    leased_by: str | None
    lease_expires_at: datetime | None
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Lease:
    """An item a worker holds; `previous` is the worker it was taken over from
    (one that died or handed it back), or None for fresh work."""

    item: Item
    owner: str
    previous: str | None


@dataclass(frozen=True)
class Access:
    name: str
    owner: str
    owner_name: str
    group: str | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _item(row: Any) -> Item:
    return Item(**{f: getattr(row, f) for f in Item.__dataclass_fields__})


def enqueue(operation: str, deployment_name: str, payload: dict[str, Any], requested_by: str) -> Item:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    with db.sessions()() as s:
        row = WorkItem(deployment_name=deployment_name, operation=operation, payload=payload,
                       requested_by=requested_by, status="queued", leases=0, created_at=_now())
        s.add(row)
        s.commit()
        return _item(row)


def lease(owner: str, seconds: float) -> Lease | None:
    """Take the oldest runnable item: queued, or running under a lease that
    expired, and the first unfinished one of its deployment. None when there is
    nothing to do."""
    w = WorkItem.__table__
    o = w.alias("earlier")
    factory = db.sessions()
    for _ in range(5):  # on SQLite another process may win the row between select and update
        now = _now()
        runnable = or_(w.c.status == "queued", and_(w.c.status == "running", w.c.lease_expires_at < now))
        earlier = select(o.c.id).where(o.c.deployment_name == w.c.deployment_name, o.c.status.in_(ACTIVE),
                                       o.c.id < w.c.id).exists()
        q = select(w).where(w.c.status.in_(ACTIVE), runnable, ~earlier).order_by(w.c.id).limit(1)
        with factory() as s:
            if s.bind.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True, of=w)
            row = s.execute(q).first()
            if row is None:
                return None
            done = s.execute(update(w).where(w.c.id == row.id, runnable).values(
                status="running", leased_by=owner, lease_expires_at=now + timedelta(seconds=seconds),
                leases=w.c.leases + 1, started_at=func.coalesce(w.c.started_at, now)))
            if done.rowcount != 1:
                s.rollback()
                continue
            s.commit()
            fresh = s.get(WorkItem, row.id)
            return Lease(_item(fresh), owner, row.leased_by)
    return None


def heartbeat(item_id: int, owner: str, seconds: float) -> bool:
    """Move the lease's expiry forward; False when the lease is no longer this
    worker's (it expired and another worker took the item over)."""
    with db.sessions()() as s:
        res = s.execute(update(WorkItem).where(WorkItem.id == item_id, WorkItem.leased_by == owner,
                                               WorkItem.status == "running")
                        .values(lease_expires_at=_now() + timedelta(seconds=seconds)))
        s.commit()
        return res.rowcount == 1


def finish(item_id: int, owner: str, error: str | None = None) -> bool:
    """Record the outcome (done, or failed with its error); False when the lease
    was lost meanwhile, and then nothing is recorded: the new holder will."""
    with db.sessions()() as s:
        res = s.execute(update(WorkItem).where(WorkItem.id == item_id, WorkItem.leased_by == owner,
                                               WorkItem.status == "running")
                        .values(status="failed" if error else "done", error=error, ended_at=_now(),
                                lease_expires_at=None))
        s.commit()
        return res.rowcount == 1


def release(item_id: int, owner: str) -> bool:
    """Hand an item back (a worker shutting down before it finished): queued
    again at once rather than after its lease expires; `leased_by` keeps the
    holder's name so the next worker knows whose deployment lock to take over."""
    with db.sessions()() as s:
        res = s.execute(update(WorkItem).where(WorkItem.id == item_id, WorkItem.leased_by == owner,
                                               WorkItem.status == "running")
                        .values(status="queued", lease_expires_at=None))
        s.commit()
        return res.rowcount == 1


def items(deployment_name: str | None = None, status: str | None = None, limit: int = 100) -> list[Item]:
    """Work items, newest first."""
    q = select(WorkItem).order_by(WorkItem.id.desc()).limit(limit)
    if deployment_name is not None:
        q = q.where(WorkItem.deployment_name == deployment_name)
    if status is not None:
        q = q.where(WorkItem.status == status)
    with db.sessions()() as s:
        return [_item(r) for r in s.scalars(q)]


def depth() -> int:
    """Work not finished yet (queued or running): the metric of a backlog."""
    with db.sessions()() as s:
        return s.scalar(select(func.count()).select_from(WorkItem).where(WorkItem.status.in_(ACTIVE))) or 0


# -- owners ------------------------------------------------------------------------------
def set_access(name: str, owner: str, owner_name: str, group: str | None) -> bool:
    """Record a new deployment's owner; False when the name is taken already (two
    requests for one name at once: the database decides)."""
    with db.sessions()() as s:
        try:
            s.execute(insert(DeploymentAccess).values(name=name, owner=owner, owner_name=owner_name, group=group,
                                                      created_at=_now()))
            s.commit()
            return True
        except IntegrityError:
            s.rollback()
            return False


def access(name: str) -> Access | None:
    with db.sessions()() as s:
        row = s.get(DeploymentAccess, name)
        return Access(row.name, row.owner, row.owner_name, row.group) if row else None


def drop_access(name: str) -> None:
    """Forget a deployment's owner (with the deployment: `forget`), freeing its name."""
    with db.sessions()() as s:
        s.execute(delete(DeploymentAccess).where(DeploymentAccess.name == name))
        s.commit()


def names_visible_to(key: str, groups: frozenset[str], admin: bool) -> list[str]:
    """The deployment names a caller may read: their own and their groups'; an
    admin, every one (those made by the command line on this database too)."""
    a = DeploymentAccess
    with db.sessions()() as s:
        if admin:
            return sorted(s.scalars(union(select(a.name), select(Deployment.name))))
        cond = a.owner == key
        if groups:
            cond = or_(cond, a.group.in_(sorted(groups)))
        return sorted(s.scalars(select(a.name).where(cond)))


def visible_to(key: str, groups: frozenset[str], admin: bool) -> dict[str, Access | None]:
    """As names_visible_to, with each name's access record (None for a deployment
    the command line made on this database: it has no owner on the server)."""
    a = DeploymentAccess
    query = select(a.name, a.owner, a.owner_name, a.group)
    if not admin:
        query = query.where(or_(a.owner == key, a.group.in_(sorted(groups))) if groups else a.owner == key)
    with db.sessions()() as s:  # columns, not objects: a listing reads every row
        records: dict[str, Access | None] = {r.name: Access(r.name, r.owner, r.owner_name, r.group)
                                             for r in s.execute(query)}
        if admin:
            for name in s.scalars(select(Deployment.name)):
                records.setdefault(name, None)
    return records
