"""The state layer: migrations, PostgreSQL as well as SQLite, locks."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from support.livecluster import Dodas, compute_template
from sqlalchemy import create_engine, inspect, text
from support.statedb import execute, postgres_server, url_of

from dodas.state.db import HEAD


@pytest.fixture
def postgres():
    """A database of its own on the real PostgreSQL server of the test run (statedb)."""
    srv = postgres_server()
    name = srv.new_database()
    try:
        yield {"url": srv.url(name), "password": srv.password, "port": srv.port}
    finally:
        srv.drop_database(name)


def compute_only(tmp_path: Path, count: int = 2) -> str:
    return compute_template(tmp_path / "boxes.yaml", count=count, cpus=1, mem="512 MiB",
                            address_output="private_address")


def test_postgresql_state(postgres, tmp_path):
    d = Dodas(tmp_path / "home")
    d.env["DODAS_DB_URL"] = postgres["url"]
    t = compute_only(tmp_path)
    r = d.run("up", t, "--name", "pg")
    assert postgres["password"] not in r.stdout + r.stderr
    st = d.json("status", "pg")
    assert st["status"] == "CREATE_COMPLETE" and len(st["instances"]) == 2
    d.run("up", t, "--name", "pg", "-i", "n=3")
    assert len(d.json("outputs", "pg")["addresses"]["value"]) == 3
    eng = create_engine(postgres["url"])
    with eng.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        assert c.execute(text("SELECT count(*) FROM instances")).scalar() == 3
        assert c.execute(text("SELECT count(*) FROM events")).scalar() > 0
    assert not (tmp_path / "home" / "data" / "state.db").exists(), "nothing went to SQLite"
    d.run("destroy", "pg", "--yes")
    with eng.connect() as c:
        assert c.execute(text("SELECT count(*) FROM instances")).scalar() == 0


def test_bad_database_url_hides_the_password(tmp_path, postgres):
    d = Dodas(tmp_path / "home")
    d.env["DODAS_DB_URL"] = f"postgresql+psycopg2://dodas:wrong-{postgres['password']}@127.0.0.1:{postgres['port']}/dodas"
    r = d.run("list", check=False)
    assert r.returncode == 1 and "cannot open the state database" in r.stderr
    assert postgres["password"] not in r.stderr and "Traceback" not in r.stderr


def test_sqlite_schema_is_migrated_with_alembic(tmp_path):
    """A read on a fresh home makes no database; the first command that writes
    the state makes it at the newest schema."""
    d = Dodas(tmp_path / "home")
    assert d.run("list").stdout.strip().lower() == "no deployments"
    assert not (tmp_path / "home" / "data" / "state.db").exists()
    assert d.run("forget", "nothing", check=False).returncode == 4  # opens the state to write: made and migrated
    eng = create_engine(f"sqlite:///{tmp_path / 'home' / 'data' / 'state.db'}")
    names = set(inspect(eng).get_table_names())
    assert {"deployments", "instances", "events", "alembic_version"} <= names
    with eng.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, state_db):
    d = Dodas(tmp_path / "home")
    state_db.env(d.env)
    t = compute_only(tmp_path, 1)
    d.run("up", t, "--name", "stale")
    dead = subprocess.Popen(["true"])
    dead.wait()
    execute(url_of(d.env, d.home), "UPDATE deployments SET lock_owner=:o",
            {"o": f"{socket.gethostname()}:{dead.pid}:1"})
    d.run("up", t, "--name", "stale", "-i", "n=2")
    st = d.json("status", "stale")
    assert st["locked_by"] is None and len(st["instances"]) == 2
    d.run("destroy", "stale", "--yes")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_opening_a_fresh_database_at_once_all_succeed(kind, postgres, tmp_path):
    """Two server replicas (or two CLIs) starting on a new database both migrate it:
    the second must wait for the first, or find its work done, never fail."""
    import os
    import sys

    url = postgres["url"] if kind == "postgresql" else f"sqlite:///{tmp_path / 'state.db'}"
    env = {**os.environ, "DODAS_DB_URL": url, "DODAS_HOME": str(tmp_path / "home")}
    code = "from dodas.state import db; db.sessions(); print('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(rc == 0 and out.strip() == "ok" for rc, out, _ in results), results
    eng = create_engine(url)
    with eng.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    eng.dispose()
