"""Opening the state database and keeping its schema current.

SQLite in the user's data directory by default (WAL mode so that `dodas status`
can read while `dodas up` writes), any SQLAlchemy URL through DODAS_DB_URL
(PostgreSQL is what the server will use). Alembic migrations run on open, but
only when the stored revision is not already the newest: a read command should
not pay for importing Alembic.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dodas import paths
from dodas.errors import DodasError

if TYPE_CHECKING:  # SQLAlchemy is imported where it is used: a read-only command reads without it
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

HEAD = "0005"
#: the PostgreSQL advisory lock that serialises migrations (an arbitrary constant of dodas's)
MIGRATION_LOCK = 0x646F646173
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def db_url() -> str:
    url = os.environ.get("DODAS_DB_URL")
    if url:
        return url
    d = paths.data_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{d / 'state.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # DB-API objects
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, no fsync per commit
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def read_only_uri(file: Path, *, shared: bool = True) -> str:
    """The SQLite URI that opens `file` read-only. `shared`: as one reader among
    writers (`dodas status` while `dodas up` runs); otherwise for a disk that
    cannot be written (no -shm file can be made): "immutable" (no locking) unless
    a write-ahead log holds commits, which must be read too."""
    from urllib.parse import quote

    uri = f"file:{quote(str(file))}?mode=ro"
    if shared:
        return uri
    log = file.with_name(file.name + "-wal")
    wal = log.exists() and log.stat().st_size > 0
    return uri + ("" if wal else "&immutable=1")


def _read_only_sqlite(file: Path) -> Engine:
    """The database on a read-only disk: `list` and `status` still work."""
    import sqlite3

    from sqlalchemy import create_engine

    uri = read_only_uri(file, shared=False)
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=30,
                                                                      check_same_thread=False))


def make_engine(url: str | None = None) -> Engine:
    from sqlalchemy import create_engine, event

    url = url or db_url()
    if url.startswith("sqlite:///"):
        file = Path(url.removeprefix("sqlite:///"))
        if file.exists() and not os.access(file.parent, os.W_OK):
            read_only_because[url] = disk_trouble(file.parent) or f"{file.parent} is not writable"
            return _read_only_sqlite(file)
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
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # two dodas processes opening a fresh database at once (two server
            # replicas, two CLIs) would both create the tables: the second waits
            # here, then finds the schema current and does nothing
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_factory: dict[str, sessionmaker[Session]] = {}
_readers: dict[str, Engine] = {}


def read_engine(url: str) -> Engine:
    """An engine for reading a database that is not the SQLite file
    (state/reads.py), kept per URL; it neither checks nor migrates the schema."""
    if url not in _readers:
        from sqlalchemy import create_engine

        try:
            _readers[url] = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # noqa: BLE001 - unknown dialect, missing driver
            raise DodasError(f"DODAS_DB_URL is not usable: {exc}") from None
    return _readers[url]


def sessions(url: str | None = None) -> sessionmaker[Session]:
    """A session factory for the state database, migrated to the newest schema."""
    url = url or db_url()
    if url not in _factory:
        engine = make_engine(url)
        try:
            revision = current_revision(engine)
        except Exception as exc:  # noqa: BLE001 - connection refused, bad credentials, a full disk, ...
            engine = _read_only_fallback(url, exc)
            revision = current_revision(engine)
        try:
            if revision != HEAD:
                with _sqlite_migration_lock(url):
                    if current_revision(engine) != HEAD:  # another process may have done it meanwhile
                        migrate(engine)
        except DodasError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection refused, bad credentials, ...
            if not _migrated_by_another(engine):
                raise DodasError(f"cannot open the state database ({_safe(url)}): {reason(exc)}") from None
        from sqlalchemy.orm import sessionmaker

        _factory[url] = sessionmaker(engine, expire_on_commit=False)
    return _factory[url]


@contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """SQLite has no advisory lock, and its DDL commits statement by statement, so
    two processes migrating a fresh file at once would trip over each other's
    half-made schema: an exclusive lock on a file beside the database serialises
    them (PostgreSQL uses an advisory lock inside the migration, see migrate)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        yield
        return
    lock_file = Path(url.removeprefix("sqlite:///") + ".migrate-lock")
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only directory: nothing to serialise with, migrate as before
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _migrated_by_another(engine: Engine) -> bool:
    """Whether a migration that failed lost a race to another process that made
    the same schema meanwhile (SQLite has no advisory lock: see migrate)."""
    try:
        return current_revision(engine) == HEAD
    except Exception:  # noqa: BLE001 - the original failure is the one to report
        return False


#: why the state was opened read-only, when it was (for the messages of writes)
read_only_because: dict[str, str] = {}


def _read_only_fallback(url: str, exc: Exception) -> Engine:
    """A SQLite database that cannot be opened for writing (a full disk leaves no
    room for its shared-memory file) is opened read-only, so that `list` and
    `status` still answer; anything that writes then fails with a clear message."""
    file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if file is None or not file.exists():
        raise DodasError(f"cannot open the state database ({_safe(url)}): {reason(exc)}") from None
    read_only_because[url] = disk_trouble(file.parent) or reason(exc)
    return _read_only_sqlite(file)


def disk_trouble(directory: Path) -> str | None:
    """"the disk is full" or "the disk is read-only" when the file system says so."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return f"the file system of {directory} is read-only"
    if st.f_bavail == 0 or st.f_favail == 0:
        return f"the file system of {directory} is full"
    return None


def reason(exc: BaseException) -> str:
    """The driver's message, without SQLAlchemy's pointers to its documentation."""
    return str(getattr(exc, "orig", None) or exc)


def describe_url() -> str:
    """Where the state is, for messages (never a password), and why it is read-only
    when it had to be opened so."""
    url = db_url_quiet()
    where = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else _safe(url)
    if url in read_only_because:
        return f"{where}, opened read-only: {read_only_because[url]}"
    if url.startswith("sqlite:///"):
        trouble = disk_trouble(Path(where).parent)
        if trouble:
            return f"{where}: {trouble}"
    return where


def db_url_quiet() -> str:
    """db_url() without making the data directory."""
    return os.environ.get("DODAS_DB_URL") or f"sqlite:///{paths.data_dir() / 'state.db'}"


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "DODAS_DB_URL"
