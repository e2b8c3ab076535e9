"""Reading and writing deployments, instances and events.

Each write is a short transaction: the engine records every state change as it
happens, so that a crash (or kill -9) leaves a state that says how far each
instance got, and the next `dodas up` can continue from there. The engine's
changes of one turn of its loop (a wave's, or the computes that finished
together) and their events go in one transaction (`write`), which on a thousand
instances is the difference between seconds and a tenth of one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dodas import paths
from dodas.redact import redact
from dodas.state import db
from dodas.state.models import Attempt, Deployment, Event, InstanceRow
from dodas.state.reads import NotFoundError, no_deployment

__all__ = ["InstanceChange", "NotFoundError", "SavedRow", "Store", "inputs_hash"]


#: (node, index, fields to save) or (node, index, None): the row is deleted
InstanceChange = tuple[str, int, "dict[str, Any] | None"]
#: what `write` sets on a row that exists
_ROW_FIELDS = ("kind", "state", "provider_id", "attributes", "secrets", "config_hash", "error", "updated_at")


class SavedRow:
    """An instance row as `write` left it: InstanceRow's columns, without the ORM's
    bookkeeping (which costs more than the write itself on a thousand rows)."""

    __slots__ = ("deployment_id", "node", "index", *_ROW_FIELDS)

    def __init__(self, values: dict[str, Any]) -> None:
        for c in self.__slots__:
            setattr(self, c, values.get(c))

    @property
    def instance_id(self) -> str:
        return paths.instance_id(self.node, self.index)


@functools.cache
def _statements() -> dict[str, Any]:
    """`write`'s statements, built once."""
    t = InstanceRow.__table__
    return {"select": select(t).where(t.c.deployment_id == bindparam("b_dep"),
                                      t.c.node.in_(bindparam("b_nodes", expanding=True)),
                                      t.c["index"].in_(bindparam("b_indexes", expanding=True))),
            "delete": t.delete().where(t.c.id == bindparam("b_id")),
            "update": t.update().where(t.c.id == bindparam("b_id")),
            "insert": t.insert(), "event": Event.__table__.insert()}


def _event_row(dep_id: str, e: dict[str, Any]) -> dict[str, Any]:
    return {"deployment_id": dep_id, "phase": e["phase"], "message": redact(e["message"]),
            "instance": e.get("instance"), "level": e.get("level", "info"),
            "time": e.get("time") or datetime.now(timezone.utc)}


def inputs_hash(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    def __init__(self, factory: sessionmaker[Session] | None = None) -> None:
        self.factory = factory or db.sessions()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.factory() as s:
            yield s

    # -- deployments ---------------------------------------------------------
    def get(self, name: str) -> Deployment | None:
        with self.session() as s:
            return s.scalars(select(Deployment).where(Deployment.name == name)).first()

    def require(self, name: str) -> Deployment:
        dep = self.get(name)
        if dep is None:
            with self.session() as s:  # names only, and a few: a server may hold thousands
                known = list(s.scalars(select(Deployment.name).order_by(Deployment.created_at).limit(21)))
            raise no_deployment(name, known)
        return dep

    def list(self) -> list[Deployment]:
        with self.session() as s:
            return list(s.scalars(select(Deployment).order_by(Deployment.created_at)))

    def summaries(self, names: list[str] | None = None) -> list[Any]:
        """What a listing shows of each deployment (of `names`, or all), oldest
        first: the columns alone, not the template and inputs a whole row holds."""
        d = Deployment
        q = select(d.name, d.id, d.status, d.provider, d.template_path, d.created_at, d.updated_at,
                   d.lock_owner).order_by(d.created_at)
        if names is not None:
            q = q.where(d.name.in_(names))
        with self.session() as s:
            return list(s.execute(q))

    def create(self, name: str, provider: str, template_path: str, template_text: str,
               template_sha256: str, inputs: dict[str, Any], status: str) -> Deployment:
        dep = Deployment(id=str(uuid.uuid4()), name=name, status=status, provider=provider,
                         template_path=template_path, template_text=template_text,
                         template_sha256=template_sha256, inputs=inputs, inputs_sha256=inputs_hash(inputs))
        with self.session() as s:
            s.add(dep)
            s.commit()
        return dep

    def update(self, dep_id: str, **fields: Any) -> None:
        if "inputs" in fields:
            fields["inputs_sha256"] = inputs_hash(fields["inputs"])
        with self.session() as s:
            dep = s.get(Deployment, dep_id)
            if dep is None:
                return
            for k, v in fields.items():
                setattr(dep, k, v)
            dep.updated_at = datetime.now(timezone.utc)
            s.commit()

    def set_status(self, dep_id: str, status: str, reason: str | None = None) -> None:
        self.update(dep_id, status=status, status_reason=redact(reason) if reason else None)

    # -- instances -------------------------------------------------------------
    def instances(self, dep_id: str) -> dict[tuple[str, int], InstanceRow]:
        with self.session() as s:
            rows = s.scalars(select(InstanceRow).where(InstanceRow.deployment_id == dep_id))
            return {(r.node, r.index): r for r in rows}

    def save_instance(self, dep_id: str, node: str, index: int, **fields: Any) -> InstanceRow:
        """Insert or update one instance; `attributes`/`secrets` given here are merged in.

        Core statements, not the ORM's unit of work: the engine calls this twice
        per instance, and on a thousand instances the difference is seconds."""
        t = InstanceRow.__table__
        key = (t.c.deployment_id == dep_id) & (t.c.node == node) & (t.c["index"] == index)
        if fields.get("error"):
            fields["error"] = redact(fields["error"])
        fields["updated_at"] = datetime.now(timezone.utc)
        with self.factory.kw["bind"].begin() as conn:
            row = conn.execute(select(t).where(key)).mappings().first()
            if row is None:
                values = {"deployment_id": dep_id, "node": node, "index": index, "kind": "software",
                          "state": "initial", "attributes": {}, "secrets": {}, **fields}
                conn.execute(t.insert().values(**values))
            else:
                for merge in ("attributes", "secrets"):
                    if merge in fields:
                        fields[merge] = {**(row[merge] or {}), **fields[merge]}
                values = {**dict(row), **fields}
                conn.execute(t.update().where(key).values(**fields))
        return InstanceRow(**{k: v for k, v in values.items() if k != "id"})

    def write(self, dep_id: str, changes: Sequence[InstanceChange] = (),
              events: Sequence[dict[str, Any]] = ()) -> dict[tuple[str, int], SavedRow]:
        """Many instance changes and events in ONE transaction: what the engine
        recorded in one turn of its loop. `changes` are applied in order, each
        `(node, index, fields)` as save_instance does (attributes and secrets
        merged in), or `(node, index, None)` to delete the row; `events` are
        dicts of `phase`, `message` and optionally `instance`, `level`, `time`.
        Returns the rows as saved (deleted ones left out).

        One SELECT of the rows concerned, then executemany statements: a
        DELETE, an INSERT, an UPDATE per set of columns changed (a row's JSON is
        not encoded again when only its state changes), and one INSERT of the
        events, whatever the number of changes: on a thousand instances, a
        transaction per change costs seconds."""
        st = _statements()
        now = datetime.now(timezone.utc)
        keys = {(node, index) for node, index, _ in changes}
        start: dict[tuple[str, int], dict[str, Any]] = {}
        final: dict[tuple[str, int], dict[str, Any] | None] = {}
        touched: dict[tuple[str, int], set[str]] = {}  # columns changed of rows that exist
        with self.factory.kw["bind"].begin() as conn:
            if keys:
                for row in conn.execute(st["select"], {"b_dep": dep_id, "b_nodes": sorted({k[0] for k in keys}),
                                                       "b_indexes": sorted({k[1] for k in keys})}).mappings():
                    if (row["node"], row["index"]) in keys:
                        start[(row["node"], row["index"])] = dict(row)
            for node, index, fields in changes:
                key = (node, index)
                if fields is None:
                    final[key] = None
                    continue
                fields = dict(fields)
                if fields.get("error"):
                    fields["error"] = redact(fields["error"])
                fields["updated_at"] = now
                current = final[key] if key in final else start.get(key)
                if current is None:
                    final[key] = {"deployment_id": dep_id, "node": node, "index": index, "kind": "software",
                                  "state": "initial", "provider_id": None, "attributes": {}, "secrets": {},
                                  "config_hash": None, "error": None, **fields}
                else:
                    for merge in ("attributes", "secrets"):
                        if merge in fields:
                            fields[merge] = {**(current.get(merge) or {}), **fields[merge]}
                    final[key] = {**current, **fields}
                    touched.setdefault(key, set()).update(fields)
            gone = [k for k, v in final.items() if k in start and (v is None or "id" not in v)]
            if gone:
                conn.execute(st["delete"], [{"b_id": start[k]["id"]} for k in gone])
            new = [v for k, v in final.items() if v is not None and "id" not in v]
            if new:
                conn.execute(st["insert"], new)
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for key, v in final.items():
                if v is not None and "id" in v:  # only the columns changed: JSON is not encoded again for nothing
                    cols = tuple(c for c in _ROW_FIELDS if c in touched[key])
                    by_columns.setdefault(cols, []).append({"b_id": v["id"], **{c: v[c] for c in cols}})
            for params in by_columns.values():
                conn.execute(st["update"], params)
            if events:
                conn.execute(st["event"], [_event_row(dep_id, e) for e in events])
        return {k: SavedRow(row) for k, row in final.items() if row is not None}

    def add_events(self, dep_id: str, events: Sequence[dict[str, Any]]) -> None:
        """Several events in one transaction (see `write`)."""
        if events:
            self.write(dep_id, (), events)

    def delete_instance(self, dep_id: str, node: str, index: int) -> None:
        with self.session() as s:
            s.execute(delete(InstanceRow).where(InstanceRow.deployment_id == dep_id, InstanceRow.node == node,
                                                InstanceRow.index == index))
            s.commit()

    # -- attempts ------------------------------------------------------------------
    def start_attempt(self, dep_id: str, provider: str, status: str = "running",
                      error: str | None = None) -> int:
        with self.session() as s:
            n = len(list(s.scalars(select(Attempt.id).where(Attempt.deployment_id == dep_id)))) + 1
            a = Attempt(deployment_id=dep_id, number=n, provider=provider, status=status,
                        error=redact(error) if error else None,
                        ended_at=None if status == "running" else datetime.now(timezone.utc))
            s.add(a)
            s.commit()
            return a.id

    def end_attempt(self, attempt_id: int, status: str, error: str | None = None) -> None:
        with self.session() as s:
            a = s.get(Attempt, attempt_id)
            if a is not None:
                a.status, a.error, a.ended_at = status, redact(error) if error else None, datetime.now(timezone.utc)
                s.commit()

    def end_running_attempts(self, dep_id: str, status: str, error: str) -> int:
        """End every attempt still marked running; for the caller that holds the lock
        and knows the dodas that made them is gone. Returns how many there were."""
        with self.session() as s:
            res = s.execute(update(Attempt).where(Attempt.deployment_id == dep_id, Attempt.status == "running")
                            .values(status=status, error=redact(error), ended_at=datetime.now(timezone.utc)))
            s.commit()
            return res.rowcount or 0

    def attempts(self, dep_id: str) -> list[Attempt]:
        with self.session() as s:
            return list(s.scalars(select(Attempt).where(Attempt.deployment_id == dep_id).order_by(Attempt.id)))

    # -- events ------------------------------------------------------------------
    def event(self, dep_id: str, phase: str, message: str, instance: str | None = None,
              level: str = "info") -> None:
        with self.factory.kw["bind"].begin() as conn:
            conn.execute(Event.__table__.insert().values(
                deployment_id=dep_id, phase=phase, message=redact(message), instance=instance, level=level,
                time=datetime.now(timezone.utc)))

    def events(self, dep_id: str, node: str | None = None, after_id: int = 0, limit: int = 10_000,
               *, instance: str | None = None, since: datetime | None = None, tail: int | None = None,
               instances: list[str] | None = None) -> list[Event]:
        """Events oldest first: of one node's instances, of one instance or of
        several (`instances`: a machine and what it hosts), from `since` on, the
        last `tail` of them only."""
        with self.session() as s:
            q = select(Event).where(Event.deployment_id == dep_id, Event.id > after_id)
            if node:
                q = q.where(Event.instance.like(f"{node}[%"))
            if instance:
                q = q.where(Event.instance == instance)
            if instances is not None:
                q = q.where(Event.instance.in_(instances))
            if since is not None:
                q = q.where(Event.time >= since)
            if tail is not None:
                return list(reversed(list(s.scalars(q.order_by(Event.id.desc()).limit(min(tail, limit))))))
            return list(s.scalars(q.order_by(Event.id).limit(limit)))

    def event_instances(self, dep_id: str) -> set[str]:
        """Every instance name the deployment's events mention."""
        with self.session() as s:
            return {i for i in s.scalars(select(Event.instance).where(Event.deployment_id == dep_id).distinct()) if i}

    def forget(self, dep_id: str) -> None:
        """Drop a deployment's rows: its events, attempts, instances and itself, in one transaction."""
        with self.session() as s:
            for table in (Event, Attempt, InstanceRow):
                s.execute(delete(table).where(table.deployment_id == dep_id))
            s.execute(delete(Deployment).where(Deployment.id == dep_id))
            s.commit()
