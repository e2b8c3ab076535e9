"""Opening the state database and keeping its schema current.

SQLite in the user's data directory by default (WAL mode so that `dodas status`
can read while `dodas up` writes), any SQLAlchemy URL through DODAS_DB_URL
(PostgreSQL is what the server will use). Alembic migrations run on open, but
only when the stored revision is not already the newest: a read command should
not pay for importing Alembic.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from dodas import paths
from dodas.errors import DodasError

HEAD = "0002"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def db_url() -> str:
    url = os.environ.get("DODAS_DB_URL")
    if url:
        return url
    d = paths.data_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{d / 'state.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, no fsync per commit
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    url = url or db_url()
    if url.startswith("sqlite:///"):
        file = Path(url.removeprefix("sqlite:///"))
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            # the state holds generated tokens and keys: readable by the user only
            fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # noqa: BLE001 - unknown dialect, missing driver
            raise DodasError(f"DODAS_DB_URL is not usable: {exc}") from None
    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_factory: dict[str, sessionmaker[Session]] = {}


def sessions(url: str | None = None) -> sessionmaker[Session]:
    """A session factory for the state database, migrated to the newest schema."""
    url = url or db_url()
    if url not in _factory:
        engine = make_engine(url)
        try:
            if current_revision(engine) != HEAD:
                migrate(engine)
        except DodasError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection refused, bad credentials, ...
            raise DodasError(f"cannot open the state database ({_safe(url)}): {exc}") from None
        _factory[url] = sessionmaker(engine, expire_on_commit=False)
    return _factory[url]


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "DODAS_DB_URL"
