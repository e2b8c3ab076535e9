"""HTCondor for the local provider: the distribution's, or a Debian 13 root dodas prepares.

HTCondor 23 is packaged in Debian 13 (`condor`) and Ubuntu, not in Debian 12,
whose libraries are too old for those binaries. Where `condor_master` is not
installed, `dodas htcondor-root` builds a minimal Debian 13 root with the
package (mmdebstrap, from the Debian archive the host's apt uses) in dodas's
cache directory, one directory per package version, and the local provider
runs the daemons from it: each program in a private mount namespace of its own
in which the root's /usr (and the loader's cache that goes with it) hides the
host's, so that the daemons keep the host's network, /tmp and the deployment's
directories at their own paths. The namespace dies with the program, leaving
no mount behind. Mounting needs root, which running HTCondor's daemons for a
pool of several identities needs anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dodas import paths

PACKAGE = "condor"
SUITE = "trixie"  # Debian 13, the first Debian release with HTCondor 23
MIRROR = "http://deb.debian.org/debian"
#: a program run from the root: the root's /usr and loader cache over the host's,
#: seen only by this program and its children ($0 is the root, then the command)
_ENTER = ('mount --bind "$0/etc/ld.so.cache" /etc/ld.so.cache && mount --bind "$0/usr" /usr '
          '&& exec "$@"')


class RootError(Exception):
    """Preparing the root failed; the message says why and what to do."""


def cache_root() -> Path:
    return paths.cache_dir() / "htcondor-root"


def prepared() -> Path | None:
    """The root named by DODAS_HTCONDOR_ROOT, else the newest prepared one in the
    cache (its directory is named by the package's version), or None."""
    given = os.environ.get("DODAS_HTCONDOR_ROOT", "").strip()
    if given:
        return Path(given) if (Path(given) / "usr/sbin/condor_master").exists() else None
    base = cache_root()
    if not base.is_dir():
        return None
    roots = sorted((d for d in base.iterdir() if d.is_dir() and (d / "usr/sbin/condor_master").exists()),
                   key=lambda d: d.stat().st_mtime)
    return roots[-1] if roots else None


def version(root: Path) -> str:
    """The condor package version of a prepared root: its directory's name."""
    return root.name


def installed() -> bool:
    """Whether HTCondor is installed on this machine itself."""
    return shutil.which("condor_master") is not None


def prefix() -> list[str] | None:
    """The command that runs an HTCondor program here: [] for the host's own
    HTCondor, the namespace entry of a prepared root (root only), None when neither."""
    if installed():
        return []
    root = prepared()
    if root is None or os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _ENTER, str(root)]


def missing_hint() -> str:
    """What to do when HTCondor is needed here and is not available."""
    if prepared() is not None and os.geteuid() != 0:
        return ("HTCondor's prepared Debian 13 root is in dodas's cache, but running its daemons needs root "
                "(a mount namespace per daemon): run dodas as root, or install the condor package")
    return ("HTCondor is not installed on this machine: on Debian 13 or Ubuntu, apt-get install condor; "
            "elsewhere, as root, `dodas htcondor-root` prepares a Debian 13 root with HTCondor in dodas's "
            "cache (needs mmdebstrap: apt-get install mmdebstrap)")


def prepare(mirror: str = MIRROR) -> Path:
    """The prepared root, built first when there is none (about 300 MB, under a
    minute with a near mirror). Built beside the cache and renamed into it once
    complete, so that a failed or interrupted build is never taken for a root."""
    found = prepared()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RootError("preparing HTCondor's Debian 13 root needs root (mmdebstrap installs packages as root)")
    if shutil.which("mmdebstrap") is None:
        raise RootError("mmdebstrap is not installed: apt-get install mmdebstrap")
    base = cache_root()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=base))
    try:
        build = subprocess.run(
            ["mmdebstrap", "--variant=apt", "--mode=root", "--format=directory", f"--include={PACKAGE}",
             "--components=main", SUITE, str(work), mirror],
            capture_output=True, text=True, check=False)
        if build.returncode != 0:
            tail = " | ".join((build.stderr or build.stdout).strip().splitlines()[-6:])
            raise RootError(f"mmdebstrap could not build a Debian 13 root from {mirror} "
                            f"(exit {build.returncode}): {tail}")
        query = subprocess.run(["chroot", str(work), "dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                               capture_output=True, text=True, check=False)
        ver = query.stdout.strip()
        if query.returncode != 0 or not ver:
            raise RootError(f"the built root has no {PACKAGE} package: {query.stderr.strip()}")
        target = base / paths.component(ver.replace("+", "_"))
        if target.exists():
            shutil.rmtree(work)
        else:
            work.rename(target)
        os.utime(target)
        return target
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
