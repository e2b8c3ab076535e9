"""Loopback addresses for the local provider, unique on the whole machine.

Every local "machine" is an address of 127.77.0.0/16. The address must be unique
among every dodas on this host, whatever its user or DODAS_HOME, or two
deployments would bind the same ports on the same address. So allocation does not
look at one data directory: it claims the address in a registry shared by all
users, `/tmp/dodas-loopback` (sticky and world-writable, like /tmp itself, so that
nobody can remove another user's claims). A claim is a file named by the address
("127.77.0.2", or "127.77.0.2~RANDOM" when that name is taken by something that
is not a claim), written whole under a temporary name and then linked into place,
so that no one ever reads half a claim. It records who claimed it and for which
machine directory.

Anyone can write into a shared directory, so a file there proves nothing by
itself. A claim counts only if it is a regular file (never a link) owned by the
uid it names, and either its claimer still runs (same pid and start time) as that
uid, or its machine's `machine.json`, owned by that uid, records the address.
Anything else (a forged claim naming pid 1 or another user, a link, garbage, a
dead claimer's leftover) is ignored, and removed only when it is this user's own:
another user's file is never deleted, so a live claim cannot be lost to a race.
Because anything ignored may still occupy an address's plain name, the claimer
then takes the random name, and checks after writing that no other claim of the
address appeared meanwhile (if one did, it withdraws): two claimants may both
withdraw, never both keep the address.

A claim naming a machine directory this user cannot read counts when the
nearest part of its path that can be seen belongs to the claimant (it may be that
user's private machine). So a user can hold as many addresses as they make
claims for their own machines, as they could by making machines; root reads
every directory, and only live or recorded claims hold an address against it.
A registry directory another user made first is taken back by root (`_adopt`).

The registry only prevents two dodas runs from choosing the same address; other
programs may still hold a port there. The allocator also skips addresses on which
anything listens, and `dodas_service` checks each port before a service starts.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from dodas import procs
from dodas.providers.base import ProviderError

NET = ipaddress.ip_network("127.77.0.0/16")
REGISTRY = Path("/tmp/dodas-loopback")
#: a claim file's name: the address, and a random tail when the plain name is taken
NAME = re.compile(r"(127\.77\.\d{1,3}\.\d{1,3})(?:~[A-Za-z0-9_-]{1,64})?")
#: larger files are not claims (nor machines): nothing is read past this
MAX_CLAIM = 4096
MAX_MACHINE = 65536


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
    if os.geteuid() == 0 and not (stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_mode & stat.S_ISVTX):
        st = _adopt(st)
    shared_ok = st.st_mode & stat.S_ISVTX and st.st_uid in (0, os.getuid())
    private_ok = st.st_uid == os.getuid() and not st.st_mode & 0o022
    if not stat.S_ISDIR(st.st_mode) or not (shared_ok or private_ok):
        raise ProviderError("local", f"the address registry {REGISTRY} is not safe to use (owner uid {st.st_uid}, "
                                     f"mode {stat.filemode(st.st_mode)}): it must be a sticky directory owned by "
                                     "root or by you; remove it and run again")
    return REGISTRY


def _adopt(st: os.stat_result) -> os.stat_result:
    """Root's answer to a registry another user made first (whoever runs dodas
    first after a boot makes it, and its owner could delete anyone's claims): the
    directory becomes root's and sticky, its claims kept; anything else in its
    place (a link, a file) is moved aside for a new directory. Done through a
    descriptor opened without following links, so a swap meanwhile changes nothing
    but what the check after it sees."""
    try:
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(REGISTRY, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.fchown(fd, 0, 0)
                os.fchmod(fd, 0o1777)
            finally:
                os.close(fd)
        else:
            os.rename(REGISTRY, f"{REGISTRY}.unsafe-{secrets.token_hex(6)}")
            os.mkdir(REGISTRY, 0o1777)
            os.chmod(REGISTRY, 0o1777)
    except OSError:
        pass  # the check that follows says what is wrong
    return os.lstat(REGISTRY)


def _candidates() -> Iterator[str]:
    for a in NET.hosts():
        s = str(a)
        if not s.endswith(".0.1"):  # keep 127.77.0.1 free: it reads like "the host"
            yield s


def _names(reg: Path, only: str | None = None) -> dict[str, list[str]]:
    """The registry's claim files by address (of `only`, when given), in name order."""
    out: dict[str, list[str]] = {}
    with os.scandir(reg) as entries:
        for entry in entries:
            m = NAME.fullmatch(entry.name)
            if m and (only is None or m.group(1) == only):
                out.setdefault(m.group(1), []).append(entry.name)
    for names in out.values():
        names.sort()
    return out


def _load(reg: Path, name: str, address: str) -> tuple[int, dict] | None:
    """The owner's uid and record of claim file `name`, or None for what is not a
    claim of `address` by its owner: a link, not a regular file, not a record, or
    one naming another uid or address (a forgery, or a copy)."""
    data = _read_owned(reg / name, MAX_CLAIM)
    if data is None:
        return None
    uid, record = data
    if record.get("uid") != uid or record.get("address") != address:
        return None
    return uid, record


def _read_owned(path: Path, limit: int) -> tuple[int, dict] | None:
    """(owner uid, JSON object) of the regular file at `path`, never following a
    link in its last component nor blocking on a FIFO; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        data = json.loads(os.read(fd, limit + 1))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return (st.st_uid, data) if isinstance(data, dict) else None


def _counts(uid: int, claim: dict, address: str) -> bool:
    """Whether a well-formed claim of `uid` holds `address`: its claimer runs, as
    `uid`, or its machine records the address (a machine outlives the `up` that
    made it). A crash between claiming and writing the machine, or a data
    directory removed without `dodas destroy`, leaves a claim that counts no more."""
    pid, start = claim.get("pid"), claim.get("start")
    if isinstance(pid, int) and not isinstance(pid, bool) and procs.known(start) and \
            procs.owner(procs.Identity(pid, str(start))) == uid:
        return True
    machine_dir = Path(str(claim.get("machine_dir") or ""))
    if not machine_dir.is_absolute():
        return False
    try:
        os.stat(machine_dir / "machine.json", follow_symlinks=False)
    except PermissionError:  # another user's private directory: it may be a machine, if it is theirs
        return _nearest_owner(machine_dir) == uid
    except OSError:
        return False
    machine = _read_owned(machine_dir / "machine.json", MAX_MACHINE)
    return machine is not None and machine[0] == uid and machine[1].get("address") == address


def _nearest_owner(path: Path) -> int | None:
    """The owner of `path`, or of its nearest ancestor this user can see: a claim
    naming a directory it cannot read counts only if that directory is, as far as
    can be seen, its claimant's (not root's /root, nor anyone else's)."""
    for candidate in (path, *path.parents):
        try:
            return os.lstat(candidate).st_uid
        except PermissionError:
            continue
        except OSError:
            return None
    return None


def _holders(reg: Path, address: str, names: list[str], machine_dir: Path) -> tuple[bool, bool]:
    """(this machine's, someone's) claim among `names`; this user's own claims
    that count no more are removed on the way."""
    mine = held = False
    for name in names:
        loaded = _load(reg, name, address)
        if loaded is None:
            continue  # not a claim: ignored, never removed (it may be another user's file)
        uid, record = loaded
        if _counts(uid, record, address):
            held = True
            mine = mine or (uid == os.getuid() and record.get("machine_dir") == str(machine_dir))
        elif uid == os.getuid():
            _remove(reg / name)  # a leftover of ours; only we (or root) could have replaced it
    return mine, held


def _write(reg: Path, address: str, record: dict) -> str | None:
    """Write the claim whole under a temporary name, then link it to the address's
    plain name, or to a random one when that is taken; returns the name."""
    tmp = reg / f".tmp-{secrets.token_urlsafe(12)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        for name in (address, f"{address}~{secrets.token_urlsafe(12)}"):
            try:
                os.link(tmp, reg / name, follow_symlinks=False)
                return name
            except FileExistsError:
                continue
        return None
    except OSError as exc:
        raise ProviderError("local", f"cannot write to the address registry {reg}: {exc.strerror}") from None
    finally:
        _remove(tmp)


def claim(machine_dir: Path, skip: set[str]) -> str:
    """Claim a free address for the machine in `machine_dir`; idempotent for it."""
    reg = _registry()
    mine = procs.identify(os.getpid())
    me = {"uid": os.getuid(), "pid": os.getpid(), "start": mine.start if mine else "",
          "machine_dir": str(machine_dir)}
    claims = _names(reg)
    for address in _candidates():
        if address in skip:
            continue
        ours, held = _holders(reg, address, claims.get(address, []), machine_dir)
        if ours:
            return address  # claimed by this machine before a crash
        if held:
            continue
        name = _write(reg, address, {**me, "address": address})
        if name is None:
            continue
        others = [n for n in _names(reg, address).get(address, []) if n != name]
        if _holders(reg, address, others, machine_dir)[1]:  # another claimant was as quick: withdraw
            _remove(reg / name)
            continue
        return address
    raise ProviderError("local", f"no free loopback address left in {NET}")


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def read(address: str) -> dict | None:
    """The record of a well-formed claim of `address` (whether it counts or not), if any."""
    try:
        names = _names(REGISTRY, address).get(address, [])
    except OSError:
        return None
    for name in names:
        loaded = _load(REGISTRY, name, address)
        if loaded is not None:
            return loaded[1]
    return None


def release(address: str, machine_dir: Path) -> None:
    """Give the address back, if this machine holds it (under any of its names)."""
    try:
        names = _names(REGISTRY, address).get(address, [])
    except FileNotFoundError:
        return
    for name in names:
        loaded = _load(REGISTRY, name, address)
        if loaded is not None and loaded[0] == os.getuid() and loaded[1].get("machine_dir") == str(machine_dir):
            try:
                (REGISTRY / name).unlink()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
