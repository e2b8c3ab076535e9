"""A full disk, a read-only disk, a directory that cannot be removed: clear errors
that name the path and the cause (exit 1, never "internal error"), the lock
released, the state consistent, clean-up problems reported as such, and `list`
and `status` still answering. Real file systems: tmpfs mounts of a fixed size,
read-only bind mounts (root is needed to mount; CI runs as root)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.livecluster import Dodas, compute_template, kill_leftovers


def _can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


@pytest.fixture(autouse=True)
def need_mount():
    if not _can_mount():
        if os.environ.get("CI"):
            pytest.fail("these tests need root and mount(8); CI provides both")
        pytest.skip("needs root to mount file systems")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextmanager
def tmpfs(path: Path, size: str = "4m", *opts: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *opts)), "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> None:
    """Write until the file system is full."""
    with open(path / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


def no_bug(r: subprocess.CompletedProcess) -> None:
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.fixture
def box(tmp_path) -> str:
    return compute_template(tmp_path / "box.yaml", count=2, cpus=1, mem="128 MiB")


def test_full_data_directory(tmp_path, box):
    """The work directories are on a full disk, the state is not: `up` fails
    naming the file and the cause, records it, releases the lock; `destroy` works
    once there is room again."""
    d = Dodas(tmp_path / "home")
    d.env["DODAS_DB_URL"] = f"sqlite:///{tmp_path / 'state.db'}"
    with tmpfs(d.home / "data", "1m") as data:
        fill(data)
        r = d.run("up", box, "--name", "full", check=False)
        assert r.returncode == 1, r.stderr
        no_bug(r)
        assert "No space left on device" in r.stderr and str(data) in r.stderr, r.stderr
        st = d.json("status", "full")
        assert st["status"] == "CREATE_FAILED" and "No space left on device" in st["reason"]
        assert st["locked_by"] is None, "the lock is released"
        (data / "filler").unlink()
        d.run("destroy", "full", "--yes")
        assert d.json("status", "full")["status"] == "DELETE_COMPLETE"
    kill_leftovers(d.home)


def test_full_disk_under_the_state(tmp_path, box):
    """Everything, the state included, on a full disk: read-only commands answer,
    commands that write say the disk is full."""
    d = Dodas(tmp_path / "home")
    with tmpfs(d.home, "4m"):
        d.run("up", box, "--name", "one")
        fill(d.home)
        r = d.run("list", check=False)
        assert r.returncode == 0 and "one" in r.stdout, r.stderr
        st = d.json("status", "one")
        assert st["status"] == "CREATE_COMPLETE" and len(st["instances"]) == 2
        for args in (("up", box, "--name", "two"), ("destroy", "one", "--yes")):
            r = d.run(*args, check=False)
            assert r.returncode == 1, r.stderr
            no_bug(r)
            assert "state.db" in r.stderr and "is full" in r.stderr, r.stderr
        (d.home / "filler").unlink()
        d.run("destroy", "one", "--yes")
    kill_leftovers(d.home)


def test_read_only_disk(tmp_path, box):
    d = Dodas(tmp_path / "home")
    d.run("up", box, "--name", "one")
    sh("mount", "--bind", str(d.home), str(d.home))
    try:
        sh("mount", "-o", "remount,bind,ro", str(d.home))
        r = d.run("list", "--json", check=False)
        assert r.returncode == 0, r.stderr
        assert [x["name"] for x in json.loads(r.stdout)] == ["one"]
        assert d.json("status", "one")["status"] == "CREATE_COMPLETE"
        for args in (("up", box, "--name", "two"), ("up", box, "--name", "one", "-i", "n=3"),
                     ("destroy", "one", "--yes")):
            r = d.run(*args, check=False)
            assert r.returncode == 1, r.stderr
            no_bug(r)
            assert "read-only" in r.stderr and "state.db" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", "-l", str(d.home)], capture_output=True)
    st = d.json("status", "one")
    assert st["status"] == "CREATE_COMPLETE" and st["locked_by"] is None, "nothing half-done"
    d.run("destroy", "one", "--yes")
    kill_leftovers(d.home)


def test_a_directory_that_cannot_be_removed_is_a_clean_up_problem(tmp_path, box):
    d = Dodas(tmp_path / "home")
    d.run("up", box, "--name", "one")
    dep = d.json("status", "one")["id"]
    machine = d.home / "data" / "local" / dep / "box-0"
    with tmpfs(machine / "stuck", "64k", "ro"):
        r = d.run("destroy", "one", "--yes", check=False)
        assert r.returncode == 1
        no_bug(r)
        assert "left problems" in r.stderr and str(machine) in r.stderr and "busy" in r.stderr, r.stderr
        st = d.json("status", "one")
        assert st["status"] == "DELETE_FAILED" and st["locked_by"] is None
        assert [i["id"] for i in st["instances"]] == ["box[0]"], "what was removed is gone, the rest is listed"
    d.run("destroy", "one", "--yes")
    assert not (d.home / "data" / "local" / dep).exists()
    kill_leftovers(d.home)
