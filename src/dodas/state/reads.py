"""The read-only commands' way into the state: one connection, opened read-only,
plain SQL over the columns a view shows, no ORM.

Why not the Store: `dodas list`, `status` and `outputs` are answered in the time
a user waits for a prompt, and importing SQLAlchemy's ORM and mapping rows into
objects cost more than the reads themselves. For the SQLite file (the CLI's
state) the standard library's `sqlite3` reads it, opened with `mode=ro`, so a
read never writes, never migrates and never creates a database; any other
`DODAS_DB_URL` (PostgreSQL) is read with SQLAlchemy Core and the same SQL text
(both take `:name` parameters), so both databases go through one read path.

The schema is checked by its version number only: a state at `db.HEAD` is read
as it is; one older (or newer) goes through `db.sessions()`, which migrates it
(or says why it cannot) as every other command does. A home with no state, or
a database with no schema yet, holds no deployment: reads say so and make
nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.errors import DodasError

#: the columns of a deployment a read shows (not its template text; the inputs for the counts
#: the autoscaler manages)
_DEPLOYMENT = ("id, name, status, status_reason, provider, template_path, template_sha256, inputs_sha256, inputs, "
               "created_at, updated_at, lock_owner, lock_acquired_at")
_JSON = ("attributes", "secrets", "inputs")
_TIMES = ("created_at", "updated_at", "started_at", "ended_at", "lock_acquired_at", "time")


class NotFoundError(DodasError):
    """No deployment of that name (exit 4)."""

    exit_code = 4


def no_deployment(name: str, known: list[str]) -> NotFoundError:
    """The error for a name the state does not hold, naming (some of) those it does."""
    from dodas.errors import no_deployment_message
    return NotFoundError(no_deployment_message(name, known))


@dataclass(frozen=True)
class Row:
    """A row as a read returns it: its columns as attributes (JSON decoded, times
    as datetimes), the shape the Store's rows have for what views use."""

    values: dict[str, Any]

    def __getattr__(self, column: str) -> Any:
        try:
            return self.values[column]
        except KeyError:
            raise AttributeError(column) from None


class Reader:
    """One read-only connection to the state (a `with` block). `empty` when there
    is no schema to read (no file, no tables): every query then returns no row."""

    def __init__(self, conn: Any, sqlite: bool) -> None:
        self._conn, self._sqlite = conn, sqlite

    def rows(self, sql: str, **params: Any) -> list[Row]:
        if self._conn is None:
            return []
        if self._sqlite:
            cur = self._conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            raw = [dict(zip(names, r)) for r in cur.fetchall()]
        else:
            from sqlalchemy import text
            raw = [dict(r) for r in self._conn.execute(text(sql), params).mappings()]
        return [Row(_decode(r, self._sqlite)) for r in raw]

    # -- the views' questions -------------------------------------------------------
    def summaries(self, names: list[str] | None = None) -> list[Row]:
        """What a listing shows of each deployment, oldest first."""
        where, params = "", {}
        if names is not None:
            if not names:
                return []
            params = {f"n{i}": n for i, n in enumerate(names)}
            where = " WHERE name IN (" + ", ".join(f":{k}" for k in params) + ")"
        return self.rows(f"SELECT {_DEPLOYMENT} FROM deployments{where} ORDER BY created_at", **params)

    def deployment(self, name: str) -> Row:
        """A deployment by name, and whether an autoscaler is registered for it
        (`elastic`); NotFoundError naming the known ones when there is none."""
        found = self.rows(f"SELECT {_DEPLOYMENT}, EXISTS (SELECT 1 FROM autoscalers a WHERE "
                          "a.deployment_name = d.name) AS elastic FROM deployments d WHERE d.name = :name",
                          name=name)
        if not found:
            known = [r.name for r in self.rows("SELECT name FROM deployments ORDER BY created_at LIMIT 21")]
            raise no_deployment(name, known)
        return found[0]

    def instances(self, dep_id: str) -> dict[tuple[str, int], Row]:
        return {(r.node, r.index): r for r in self.rows(
            'SELECT node, "index", kind, state, provider_id, attributes, secrets, error FROM instances '
            "WHERE deployment_id = :dep", dep=dep_id)}

    def attempts(self, dep_id: str) -> list[Row]:
        return self.rows("SELECT number, provider, status, error, started_at, ended_at FROM attempts "
                         "WHERE deployment_id = :dep ORDER BY id", dep=dep_id)


@contextmanager
def reading() -> Iterator[Reader]:
    """A Reader on the state, opened read-only; one connection for the block."""
    from dodas.state import db

    url = db.db_url_quiet()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        file = Path(url.removeprefix("sqlite:///"))
        if not file.exists():
            yield Reader(None, True)
            return
        conn = _open_sqlite(file)
        try:
            revision = _sqlite_revision(conn)
            if revision is not None and revision != db.HEAD:
                conn.close()
                db.sessions(url)  # migrates it, or says why it cannot
                conn = _open_sqlite(file)
            yield Reader(conn if revision is not None else None, True)
        finally:
            conn.close()
        return
    engine = db.read_engine(url)
    try:
        conn_cm = engine.connect()
        conn = conn_cm.__enter__()
    except Exception as exc:  # noqa: BLE001 - connection refused, bad credentials
        raise DodasError(f"cannot open the state database ({db.describe_url()}): {db.reason(exc)}") from None
    try:
        revision = _revision(conn)
        if revision is not None and revision != db.HEAD:
            db.sessions(url)
        yield Reader(conn if revision is not None else None, False)
    finally:
        conn_cm.__exit__(None, None, None)


def _open_sqlite(file: Path) -> Any:
    """The SQLite file, read-only: as one reader among writers, else (a disk that
    cannot take the shared-memory file) as db.read_only_uri says."""
    import sqlite3

    from dodas.state import db

    problem: Exception | None = None
    for shared in (True, False):
        try:
            conn = sqlite3.connect(db.read_only_uri(file, shared=shared), uri=True, timeout=30,
                                   check_same_thread=False)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
            return conn
        except sqlite3.Error as exc:
            problem = exc
    raise DodasError(f"cannot open the state database ({file}): {problem}") from None


def _sqlite_revision(conn: Any) -> str | None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone():
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    return None


def _revision(conn: Any) -> str | None:
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _decode(row: dict[str, Any], sqlite: bool) -> dict[str, Any]:
    """SQLite hands JSON and times back as text: decode them as SQLAlchemy's types
    would (a time without its zone, as SQLAlchemy's SQLite dialect returns it)."""
    if sqlite:
        for c in _JSON:
            if isinstance(row.get(c), str):
                row[c] = json.loads(row[c])
        for c in _TIMES:
            if isinstance(row.get(c), str):
                row[c] = datetime.fromisoformat(row[c])
        if "elastic" in row:
            row["elastic"] = bool(row["elastic"])
    for c in ("attributes", "secrets"):
        if c in row and row[c] is None:
            row[c] = {}
    return row


def has_state() -> bool:
    """Whether there is a state to read at all (for shell completion)."""
    return bool(os.environ.get("DODAS_DB_URL")) or (paths.data_dir() / "state.db").exists()
