"""Where dodas keeps its files, and how names become file names.

State (the database, per-deployment work directories) goes to the data directory,
fetched imports to the cache, provider configuration to the config directory.
Each can be moved with its XDG variable; DODAS_HOME moves all three at once,
which is what tests and benchmarks use to stay isolated.

Names come from templates and users (node names, instance ids, deployment names)
and may hold anything: `..`, `/`, NUL, thousands of characters. They become file
names only through `component`/`instance_component`, which map every name to one
safe, bounded and unique path component; and dodas deletes a directory only through
`remove_tree`, which first checks that it lies inside the directory it belongs to.
This module is the one place for both.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path, PurePosixPath


def _base(xdg_var: str, default: str, sub: str) -> Path:
    home = os.environ.get("DODAS_HOME")
    if home:
        return Path(home) / sub
    root = os.environ.get(xdg_var) or os.path.join(os.path.expanduser("~"), default)
    return Path(root) / "dodas"


def data_dir() -> Path:
    return _base("XDG_DATA_HOME", ".local/share", "data")


def cache_dir() -> Path:
    return _base("XDG_CACHE_HOME", ".cache", "cache")


def config_dir() -> Path:
    return _base("XDG_CONFIG_HOME", ".config", "config")


PACKAGE_DIR = Path(__file__).resolve().parent
TYPE_LIBRARY = PACKAGE_DIR / "tosca" / "library" / "dodas_types.yaml"
PLAYBOOKS_DIR = PACKAGE_DIR / "configure"


# -- names to file names --------------------------------------------------------
#: what a name may look like to be used as it is: it also cannot be "." or ".."
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_INSTANCE = re.compile(r"(.*)\[(\d{1,9})\]", re.S)
#: a mapped name keeps a readable prefix; "~" never occurs in a plain name, so a
#: mapped name can never equal a plain one
_PREFIX = 40


def component(name: str) -> str:
    """The path component for a name: itself when it is plain (letters, digits,
    `_.-`, at most 64 characters, not starting with a dot), otherwise a readable
    prefix and a digest of the whole name. Always a single component, never "." or
    "..", at most 64 characters, and different names never share one."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"not a usable name: {name!r}")
    if _PLAIN.fullmatch(name):
        return name
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip("._-")[:_PREFIX]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{prefix or 'x'}~{digest}"


def instance_id(node: str, index: int) -> str:
    """The one spelling of an instance's name: "node[3]" (state, events, providers'
    tags); `instance_component` turns it into a path component or host name."""
    return f"{node}[{index}]"


def instance_component(instance_id: str) -> str:
    """"node[3]" -> "node-3" (the node's component and the index)."""
    m = _INSTANCE.fullmatch(instance_id)
    if m is None:
        return component(instance_id)
    return f"{component(m.group(1))}-{int(m.group(2))}"


def node_dir(machine_dir: str, node: str) -> str:
    """Where a software node keeps its files on its machine."""
    return str(PurePosixPath(machine_dir) / component(node))


def host_dir(base: str, deployment_id: str, instance_id: str) -> str:
    """A machine's work directory on a remote host (POSIX path under `base`)."""
    return str(PurePosixPath(base) / component(deployment_id) / instance_component(instance_id))


# -- writing and deleting safely --------------------------------------------------
def write_private(path: Path, text: str) -> None:
    """Write a file (mode 0600) whole or not at all; an error names the file (a full
    disk fails on write or close, where Python's error carries no file name)."""
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise OSError(exc.errno, exc.strerror, str(path)) from None


# -- deleting safely ------------------------------------------------------------
class OutsideError(ValueError):
    """A path that should be inside a directory is not."""


def is_within(path: Path | str, directory: Path | str) -> bool:
    """Whether `path` is `directory` or below it, both with `..` and links resolved."""
    p, base = os.path.realpath(path), os.path.realpath(directory)
    return p == base or p.startswith(base.rstrip(os.sep) + os.sep)


def inside(path: Path | str, base: Path | str) -> Path:
    """`path`, checked to lie strictly inside `base` once `..` and symbolic links of
    its parents are resolved (the last component itself is not followed: removing a
    link removes the link). Raises OutsideError otherwise."""
    p = Path(os.path.abspath(path))
    if p.name in ("", ".", "..") or not is_within(p.parent, base):
        raise OutsideError(f"{path} is not inside {base}")
    return Path(os.path.realpath(p.parent)) / p.name


def remove_tree(path: Path | str, base: Path | str) -> None:
    """Remove a directory (or file, or link) that must lie inside `base`.

    Missing is fine (removal is idempotent); anything that cannot be removed raises
    OSError naming the path, so that callers report it instead of claiming success."""
    target = inside(path, base)
    if target.is_symlink() or target.is_file():
        target.unlink(missing_ok=True)
        return
    if not target.exists():
        return
    failures: list[str] = []

    def onerror(_func, where, exc_info) -> None:  # shutil's callback
        exc = exc_info[1]
        if not (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
            rel = os.path.relpath(where, target) if str(where).startswith(str(target)) else where
            failures.append(f"{rel}: {getattr(exc, 'strerror', None) or exc}")

    if sys.version_info >= (3, 12):  # never follows symbolic links out of the tree
        shutil.rmtree(target, onexc=lambda f, w, e: onerror(f, w, (type(e), e, None)))
    else:
        shutil.rmtree(target, onerror=onerror)
    if failures or target.exists():
        raise OSError(errno.EIO, failures[0] if failures else "still there after removal", str(target))
