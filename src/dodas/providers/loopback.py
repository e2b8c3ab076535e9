"""Loopback addresses for the local provider, unique on the whole machine.

Every local "machine" is an address of 127.77.0.0/16. The address must be unique
among every dodas on this host, whatever its user or DODAS_HOME, or two
deployments would bind the same ports on the same address. So allocation does not
look at one data directory: it claims the address in a registry shared by all
users, `/tmp/dodas-loopback` (sticky and world-writable, like /tmp itself, so that
nobody can remove another user's claims). A claim is a file named by the address,
created with O_EXCL: the file system arbitrates, no lock is needed. It records who
claimed it and for which machine directory; a claim whose claimer is gone and whose
machine directory no longer records that address is stale and taken over.

The registry only prevents two dodas runs from choosing the same address; other
programs may still hold a port there. The allocator also skips addresses on which
anything listens, and `dodas_service` checks each port before a service starts.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from dodas import procs
from dodas.providers.base import ProviderError

NET = ipaddress.ip_network("127.77.0.0/16")
REGISTRY = Path("/tmp/dodas-loopback")


def _registry() -> Path:
    """The registry directory, made if missing and checked if present: a directory
    (not a link) that is sticky, or that only this user can write."""
    try:
        os.mkdir(REGISTRY, 0o1777)
        os.chmod(REGISTRY, 0o1777)  # the umask may have removed bits
    except FileExistsError:
        pass
    except OSError as exc:
        raise ProviderError("local", f"cannot create the address registry {REGISTRY}: {exc.strerror}") from None
    st = os.lstat(REGISTRY)
    shared_ok = st.st_mode & stat.S_ISVTX and st.st_uid in (0, os.getuid())
    private_ok = st.st_uid == os.getuid() and not st.st_mode & 0o022
    if not stat.S_ISDIR(st.st_mode) or not (shared_ok or private_ok):
        raise ProviderError("local", f"the address registry {REGISTRY} is not safe to use (owner uid {st.st_uid}, "
                                     f"mode {stat.filemode(st.st_mode)}): it must be a sticky directory owned by "
                                     "root or by you; remove it and run again")
    return REGISTRY


def _candidates() -> Iterator[str]:
    for a in NET.hosts():
        s = str(a)
        if not s.endswith(".0.1"):  # keep 127.77.0.1 free: it reads like "the host"
            yield s


def _claim_is_stale(claim: dict) -> bool:
    """A claim is stale when its claimer is gone and its machine does not exist
    any more (or records another address): a crash between claiming and writing
    the machine, or a data directory removed without `dodas destroy`."""
    pid, start = claim.get("pid"), claim.get("start")
    if isinstance(pid, int) and procs.known(start) and procs.running(pid, str(start)):
        return False
    machine = Path(str(claim.get("machine_dir") or "/nonexistent")) / "machine.json"
    try:
        return json.loads(machine.read_text()).get("address") != claim.get("address")
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False  # cannot tell (another user's directory): leave it alone


def claim(machine_dir: Path, skip: set[str]) -> str:
    """Claim a free address for the machine in `machine_dir`; idempotent for it."""
    reg = _registry()
    mine = procs.identify(os.getpid())
    me = {"uid": os.getuid(), "pid": os.getpid(), "start": mine.start if mine else "",
          "machine_dir": str(machine_dir)}
    for address in _candidates():
        if address in skip:
            continue
        path = reg / address
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            existing = read(address)
            if existing is not None and existing.get("machine_dir") == str(machine_dir):
                return address  # claimed by this machine before a crash
            if existing is not None and _claim_is_stale(existing) and _remove(path):
                fd = _create(path)
                if fd is None:
                    continue
            else:
                continue
        except OSError as exc:
            raise ProviderError("local", f"cannot write to the address registry {reg}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            json.dump({**me, "address": address}, fh)
        return address
    raise ProviderError("local", f"no free loopback address left in {NET}")


def _create(path: Path) -> int | None:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return None  # another dodas took it over first


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def read(address: str) -> dict | None:
    try:
        data = json.loads((REGISTRY / address).read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def release(address: str, machine_dir: Path) -> None:
    """Give the address back, if this machine holds it."""
    claim_ = read(address)
    if claim_ is not None and claim_.get("machine_dir") == str(machine_dir):
        try:
            (REGISTRY / address).unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
