"""Autoscalers in the state database: which process scales each elastic
deployment, and what its loop remembers.

A deployment is registered when an apply leaves it with an elasticity policy
and forgotten when it is destroyed. A process that wants to scale it takes a
lease (a guarded UPDATE: the row is free, or its lease expired), renews it at
every poll and gives it back when it stops; with several server processes and
foreground `dodas autoscale` runs, exactly one holds each deployment. What
the loop remembers between polls is stored with every decision, so a new
holder continues where the last one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from dodas.state import db
from dodas.state.work_models import Autoscaler


@dataclass(frozen=True)
class Held:
    name: str
    memory: dict[str, Any]
    last_reason: str | None
    #: who held it before (None: nobody, or it was given back)
    previous: str | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def register(name: str) -> None:
    """Make `name` an elastic deployment (nothing when it is one already)."""
    with db.sessions()() as s:
        try:
            s.execute(insert(Autoscaler).values(deployment_name=name, memory={}, created_at=_now()))
            s.commit()
        except IntegrityError:
            s.rollback()


def forget(name: str) -> None:
    with db.sessions()() as s:
        s.execute(delete(Autoscaler).where(Autoscaler.deployment_name == name))
        s.commit()


def names() -> list[str]:
    with db.sessions()() as s:
        return sorted(s.scalars(select(Autoscaler.deployment_name)))


def lease(owner: str, seconds: float, name: str | None = None, exclude: frozenset[str] = frozenset()) -> Held | None:
    """Take `name`'s autoscaler (or any free one not in `exclude`) for `seconds`;
    None when it is held by another live process (or nothing is free)."""
    a = Autoscaler.__table__
    for _ in range(5):  # another process may win the row between select and update
        now = _now()
        free = or_(a.c.leased_by.is_(None), a.c.lease_expires_at.is_(None), a.c.lease_expires_at < now,
                   a.c.leased_by == owner)
        q = select(a).where(free).order_by(a.c.polled_at.asc().nullsfirst(), a.c.deployment_name).limit(1)
        if name is not None:
            q = q.where(a.c.deployment_name == name)
        elif exclude:
            q = q.where(a.c.deployment_name.not_in(sorted(exclude)))
        with db.sessions()() as s:
            if s.bind.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            row = s.execute(q).first()
            if row is None:
                return None
            done = s.execute(update(a).where(a.c.deployment_name == row.deployment_name, free).values(
                leased_by=owner, lease_expires_at=now + timedelta(seconds=seconds)))
            if done.rowcount != 1:
                s.rollback()
                continue
            s.commit()
            previous = row.leased_by if row.leased_by != owner else None
            return Held(row.deployment_name, dict(row.memory or {}), row.last_reason, previous)
    return None


def holder(name: str) -> tuple[str | None, datetime | None]:
    """Who holds `name`'s autoscaler and until when (None: nobody)."""
    with db.sessions()() as s:
        row = s.get(Autoscaler, name)
        if row is None or row.leased_by is None or row.lease_expires_at is None:
            return None, None
        until = row.lease_expires_at if row.lease_expires_at.tzinfo else row.lease_expires_at.replace(
            tzinfo=timezone.utc)
        return (row.leased_by, until) if until > _now() else (None, None)


def stored_memory(name: str) -> dict[str, Any] | None:
    """The memory the loop of `name` stored last (None when it has none)."""
    with db.sessions()() as s:
        row = s.get(Autoscaler, name)
        return dict(row.memory or {}) if row is not None else None


#: the key of the memory that holds what a user set by hand (`dodas autoscale NAME --disable ...`):
#: kept by the loop's saves, changed only by `control`
CONTROLS = "controls"


def _current(s: Any, name: str) -> Any:
    q = select(Autoscaler).where(Autoscaler.deployment_name == name)
    if s.bind.dialect.name == "postgresql":
        q = q.with_for_update()
    return s.scalars(q).first()


def save(name: str, owner: str, seconds: float, memory: dict[str, Any], last_reason: str | None,
         event: tuple[str, str] | None = None) -> bool:
    """Store the loop's memory and renew the lease; False when the lease is no
    longer `owner`'s (then nothing is stored: the new holder decides). What a
    user set by hand (CONTROLS) is kept as it is in the database; a None
    `last_reason` keeps the stored one (a renewal during a long scale).

    `event` (deployment id, message) is a decision to record in the
    deployment's log in the same transaction: a process killed in between can
    neither tell a decision it did not store (its successor would tell it
    again) nor store one it did not tell, and one that lost its lease tells
    nothing."""
    from dodas.redact import redact
    from dodas.state.models import Event

    with db.sessions()() as s:
        row = _current(s, name)
        controls = (row.memory or {}).get(CONTROLS) if row is not None else None
        values: dict[str, Any] = {"memory": {**memory, CONTROLS: controls or {}}, "polled_at": _now(),
                                  "lease_expires_at": _now() + timedelta(seconds=seconds)}
        if last_reason is not None:
            values["last_reason"] = last_reason
        res = s.execute(update(Autoscaler).where(Autoscaler.deployment_name == name, Autoscaler.leased_by == owner)
                        .values(**values))
        if res.rowcount == 1 and event is not None:
            s.execute(insert(Event.__table__).values(deployment_id=event[0], phase="autoscale",
                                                     message=redact(event[1]), level="info", instance=None,
                                                     time=_now()))
        s.commit()
        return res.rowcount == 1


def controls(name: str) -> dict[str, dict[str, float]]:
    """What was set by hand: {"disabled": {instance: since}, "drain": {instance: since}}."""
    found = (stored_memory(name) or {}).get(CONTROLS) or {}
    return {k: dict(found.get(k) or {}) for k in ("disabled", "drain")}


def control(name: str, instances: list[str], kind: str | None, since: float) -> None:
    """Set (kind "disabled" or "drain") or clear (None) what was set by hand for `instances`."""
    with db.sessions()() as s:
        row = _current(s, name)
        if row is None:
            return
        memory = dict(row.memory or {})
        found = memory.get(CONTROLS) or {}
        kept = {k: {i: t for i, t in (found.get(k) or {}).items() if i not in instances} for k in ("disabled", "drain")}
        if kind is not None:
            kept[kind].update(dict.fromkeys(instances, since))
        s.execute(update(Autoscaler).where(Autoscaler.deployment_name == name)
                  .values(memory={**memory, CONTROLS: kept}))
        s.commit()


def release(name: str, owner: str) -> None:
    """Give the autoscaler back at once (a loop that stops), rather than when its lease expires."""
    with db.sessions()() as s:
        s.execute(update(Autoscaler).where(Autoscaler.deployment_name == name, Autoscaler.leased_by == owner)
                  .values(leased_by=None, lease_expires_at=None))
        s.commit()
