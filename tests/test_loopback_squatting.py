"""The loopback registry squatted by another user (issue 25, attack 9): `nobody`
writes a claim naming pid 1 (which runs, as root) for every address of
127.77.0.0/16, in every shape a forger might try (its own uid, root's uid, a
machine directory root cannot be shown, a link to a file of root's, a FIFO).
None of it holds an address: root's `dodas up` on the local provider still gets
one, a third user still gets another, nothing of nobody's is deleted or
followed, and `destroy` gives root's address back.

The registry here is a private copy of the machine's (tests/support/registry.py),
bound over /tmp/dodas-loopback in a mount namespace: the real path and code,
without filling the registry the rest of the suite uses."""

from __future__ import annotations

import json
import os
import pwd
import stat
import sys

import pytest
from support.livecluster import DODAS, Dodas, compute_template, kill_leftovers
from support.registry import in_registry, need_namespaces, seed_registry

FORGE = r"""
import json, os, sys
from dodas import procs
from dodas.providers import loopback

start = procs.identify(1).start
reg = loopback.REGISTRY
private = sys.argv[1:] == ["private"]  # every claim nobody's own, naming a directory of root's
made = 0
for address in loopback._candidates():
    path = reg / address
    try:  # (a claim of the machine's, copied in, is left as it is)
        if made == 0 and not private:
            os.symlink("/etc/hostname", path)
        elif made == 1 and not private:
            os.mkfifo(path)
        else:
            uid = 0 if made % 2 and not private else os.getuid()
            machine = f"/root/.dodas-machine-{made}" if made % 3 or private else f"/tmp/nobody-machine-{made}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as fh:
                json.dump({"uid": uid, "pid": 1, "start": start, "address": address, "machine_dir": machine}, fh)
    except FileExistsError:
        continue
    made += 1
print(made)
"""

CLAIM = r"""
import sys
from pathlib import Path
from dodas.providers import loopback
print(loopback.claim(Path(sys.argv[1]), set()))
"""


def _nobodys(registry) -> dict[str, tuple[int, str]]:
    """nobody's entries of the registry: name -> (mode, what it is)."""
    uid = pwd.getpwnam("nobody").pw_uid
    out = {}
    for entry in os.scandir(registry):
        st = entry.stat(follow_symlinks=False)
        if st.st_uid == uid:
            out[entry.name] = (st.st_mode, os.readlink(entry.path) if stat.S_ISLNK(st.st_mode) else "")
    return out


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def test_claims_forged_by_another_user_block_no_one(d, tmp_path):
    need_namespaces()
    registry = seed_registry(tmp_path / "registry")
    env = {**d.env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    forged = in_registry(registry, [sys.executable, "-c", FORGE], user="nobody", env=env)
    assert forged.returncode == 0, forged.stderr
    assert int(forged.stdout) > 65000, "nobody squatted (nearly) every address"
    before = _nobodys(registry)

    t = compute_template(tmp_path / "t.yaml", count=2, cpus=1, mem="128 MiB")
    up = in_registry(registry, [*DODAS, "up", t, "--name", "squat"], env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    status = json.loads(in_registry(registry, [*DODAS, "status", "squat", "--json"], env=env).stdout)
    assert status["status"] == "CREATE_COMPLETE"
    got = {i["address"] for i in status["instances"]}
    assert len(got) == 2 and all(a.startswith("127.77.") for a in got), got
    for address in got:  # root's own claims, beside the forgeries it ignored
        names = [n for n in os.listdir(registry) if n.split("~")[0] == address and
                 os.lstat(registry / n).st_uid == 0]
        assert len(names) == 1, names
        claim = json.loads((registry / names[0]).read_text())
        assert claim["uid"] == 0 and claim["address"] == address and str(d.home) in claim["machine_dir"]

    # another user, unable to read root's machines, gets an address of its own
    other = in_registry(registry, [sys.executable, "-c", CLAIM, "/tmp/daemon-machine"], user="daemon", env=env)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().startswith("127.77.") and other.stdout.strip() not in got

    assert _nobodys(registry) == before, "nothing of nobody's was removed, replaced or followed"
    assert os.path.exists("/etc/hostname")

    gone = in_registry(registry, [*DODAS, "destroy", "squat", "--yes"], env=env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not [n for n in os.listdir(registry) if n.split("~")[0] in got and os.lstat(registry / n).st_uid == 0], \
        "destroy gave root's addresses back"
    assert _nobodys(registry) == before


def test_a_registry_another_user_made_first_is_taken_back_by_root(d, tmp_path):
    """Whoever runs dodas first after a boot makes /tmp/dodas-loopback, and as its
    owner could delete anyone's claims: root's `dodas up` makes it root's and
    sticky again, keeping what is in it, and uses it."""
    need_namespaces()
    registry = seed_registry(tmp_path / "registry")
    nobody = pwd.getpwnam("nobody")
    os.chown(registry, nobody.pw_uid, nobody.pw_gid)
    os.chmod(registry, 0o777)  # not even sticky
    env = {**d.env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    forged = in_registry(registry, [sys.executable, "-c", FORGE], user="nobody", env=env)
    assert forged.returncode == 0, forged.stderr
    before = _nobodys(registry)

    t = compute_template(tmp_path / "t.yaml", count=1, cpus=1, mem="128 MiB")
    up = in_registry(registry, [*DODAS, "up", t, "--name", "first"], env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    st = os.lstat(registry)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o1777)
    assert _nobodys(registry) == before, "its contents are kept"
    other = in_registry(registry, [sys.executable, "-c", CLAIM, "/tmp/daemon-machine"], user="daemon", env=env)
    assert other.returncode == 0 and other.stdout.startswith("127.77."), other.stderr
    assert in_registry(registry, [*DODAS, "destroy", "first", "--yes"], env=env).returncode == 0


def test_claims_naming_directories_others_cannot_read_block_no_one(tmp_path):
    """nobody's own claims (its uid, in its files) for every address, each naming
    a machine under /root, which another user cannot look into: they are not
    nobody's machines, so they hold nothing against that user either."""
    need_namespaces()
    registry = seed_registry(tmp_path / "registry")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    forged = in_registry(registry, [sys.executable, "-c", FORGE, "private"], user="nobody", env=env)
    assert forged.returncode == 0 and int(forged.stdout) > 65000, forged.stderr
    other = in_registry(registry, [sys.executable, "-c", CLAIM, "/tmp/daemon-machine"], user="daemon", env=env)
    assert other.returncode == 0 and other.stdout.startswith("127.77."), other.stdout + other.stderr
