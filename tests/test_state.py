"""The state layer: migrations, PostgreSQL as well as SQLite, locks."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from livecluster import Dodas, compute_template
from sqlalchemy import create_engine, inspect, text

from dodas.state.db import HEAD


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server on loopback, with a password, for this module."""
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
    try:
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dodas", "dodas"],
                       check=True, capture_output=True, env=env)
        yield {"url": f"postgresql+psycopg2://dodas:{password}@127.0.0.1:{port}/dodas", "password": password,
               "port": port}
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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
    d = Dodas(tmp_path / "home")
    d.run("list")
    eng = create_engine(f"sqlite:///{tmp_path / 'home' / 'data' / 'state.db'}")
    names = set(inspect(eng).get_table_names())
    assert {"deployments", "instances", "events", "alembic_version"} <= names
    with eng.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    d = Dodas(tmp_path / "home")
    t = compute_only(tmp_path, 1)
    d.run("up", t, "--name", "stale")
    dead = subprocess.Popen(["true"])
    dead.wait()
    eng = create_engine(f"sqlite:///{tmp_path / 'home' / 'data' / 'state.db'}")
    with eng.begin() as c:
        c.execute(text("UPDATE deployments SET lock_owner=:o"), {"o": f"{socket.gethostname()}:{dead.pid}:1"})
    d.run("up", t, "--name", "stale", "-i", "n=2")
    st = d.json("status", "stale")
    assert st["locked_by"] is None and len(st["instances"]) == 2
    d.run("destroy", "stale", "--yes")
