"""The state database under test: dodas's default SQLite file, or a real
PostgreSQL server (selected through DODAS_DB_URL, as a user would).

One PostgreSQL server is started per test process, the first time a test asks
for it, on loopback with a password; each test gets a database of its own on
it, so tests see no one else's deployments. Tests that read the state directly
do it through the URL (`url_of`, `rows`, `execute`), never by opening a SQLite
file, so that they check the same thing on both."""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    password: str
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://dodas:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        eng = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
        return name

    def drop_database(self, name: str) -> None:
        eng = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with eng.connect() as c:  # a killed dodas may still hold a connection: end it
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                      {"d": name})
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        eng.dispose()


_server: list[Postgres] = []


def postgres_server() -> Postgres:
    """The process's PostgreSQL server, started on first use and stopped at exit."""
    if _server:
        return _server[0]
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries are not installed (make.py test installs them)")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="dodas-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    password = os.urandom(12).hex()
    pwfile = root / "pw"
    pwfile.write_text(password)
    if as_user:
        shutil.chown(pwfile, "postgres")
    port = _free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(root / "data"), "-U", "dodas",
                    f"--pwfile={pwfile}", "-A", "scram-sha-256"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w",
                    "-o", f"-h 127.0.0.1 -p {port} -k {root}", "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    atexit.register(stop)
    _server.append(Postgres(password, port))
    return _server[0]


@dataclass
class StateDB:
    """Where a test's dodas keeps its state: `url` None is dodas's default SQLite file."""

    kind: str
    url: str | None = None

    def env(self, env: dict[str, str]) -> None:
        """Point a dodas command's environment at this database."""
        if self.url:
            env["DODAS_DB_URL"] = self.url
        else:
            env.pop("DODAS_DB_URL", None)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request):
    """Each test that uses it runs twice: on SQLite, and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield StateDB("sqlite")
        return
    srv = postgres_server()
    name = srv.new_database()
    try:
        yield StateDB("postgresql", srv.url(name))
    finally:
        srv.drop_database(name)


def url_of(env: dict[str, str], home: Path) -> str:
    """The state database a dodas with this environment and home uses."""
    return env.get("DODAS_DB_URL") or f"sqlite:///{home / 'data' / 'state.db'}"


def execute(url: str, sql: str, params: dict[str, Any] | None = None) -> None:
    eng = create_engine(url)
    try:
        with eng.begin() as c:
            c.execute(text(sql), params or {})
    finally:
        eng.dispose()


def rows(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return [tuple(r) for r in c.execute(text(sql), params or {})]
    finally:
        eng.dispose()


def all_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table: what a read-only command must leave as it was."""
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return {t: [tuple(r) for r in c.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))]
                    for t in sorted(inspect(c).get_table_names())}
    finally:
        eng.dispose()
