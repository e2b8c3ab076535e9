"""The loopback registry of the local provider (/tmp/dodas-loopback) made private
to a test, so that a test may fill it with hostile claims without touching the
machine's own, which other runs of the suite use at the same time.

    seed_registry(directory)                  # a copy of the machine's claims, as they are now
    in_registry(directory, [*DODAS, "up", ...], env=env)           # a command that sees it
    in_registry(directory, [sys.executable, "-c", code], user="nobody")  # as another user

Each command runs in a mount namespace of its own (`unshare --mount`) in which the
directory is bound over /tmp/dodas-loopback: the real path, the real code, the
machine's other users' view of it. Needs root (mounts, setpriv) and util-linux.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REGISTRY = "/tmp/dodas-loopback"
BIND = (f'[ -d {REGISTRY} ] || mkdir -m 1777 {REGISTRY}; '
        f'mount --bind "$0" {REGISTRY} && exec "$@"')


def need_namespaces() -> None:
    """Skip (a failure in CI) where mount namespaces cannot be made: not root, no unshare."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("a private loopback registry needs root, unshare and setpriv (util-linux)")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount namespaces are not allowed here: {r.stderr.strip()}")


def seed_registry(directory: Path) -> Path:
    """`directory` made a registry (root's, sticky, world-writable) holding a copy of
    the machine's claims, owners kept: addresses in use elsewhere stay taken."""
    directory.mkdir()
    os.chmod(directory, 0o1777)
    if os.path.isdir(REGISTRY):
        subprocess.run(["cp", "-a", f"{REGISTRY}/.", str(directory)], check=True)
    return directory


def in_registry(directory: Path, argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `argv` (as `user`, when given) with `directory` as the loopback registry."""
    if user is None:
        return _in_namespace(directory, argv, env, timeout)
    entry = pwd.getpwnam(user)
    argv = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--", *argv]
    with _enterable_by_others([Path(sys.executable), *(Path(p) for p in sys.path if p)]):
        return _in_namespace(directory, argv, env, timeout)


def _in_namespace(directory: Path, argv: list[str], env: dict[str, str] | None,
                  timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", BIND, str(directory),
                           *argv], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@contextmanager
def _enterable_by_others(paths: list[Path]) -> Iterator[None]:
    """The interpreter and the code (sys.path) reachable by another user while it
    runs: a checkout in a directory of root's alone (`mktemp -d`, as CI clones)
    gets the search permission for others on that directory (never read: nothing
    is listed), and only for as long as the command runs."""
    opened: list[tuple[Path, int]] = []
    seen: set[Path] = set()
    try:
        for path in paths:
            for parent in [*reversed(path.parents), path]:
                if parent in seen or not parent.is_dir():
                    continue
                seen.add(parent)
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)
                    opened.append((parent, stat.S_IMODE(mode)))
        yield
    finally:
        for parent, mode in reversed(opened):
            os.chmod(parent, mode)
