"""The operation behind `dodas htcondor-root`: HTCondor for the local provider where
the machine has no package of it (the root itself: dodas.providers.htcondor_root)."""

from __future__ import annotations

from dodas.errors import DodasError
from dodas.providers import htcondor_root as hr


def prepare() -> str:
    """What was found or prepared, as one line for the user; DodasError naming what
    to do when the root cannot be built."""
    if hr.installed():
        return "HTCondor is installed on this machine; the local provider uses it (no root needed)"
    try:
        root = hr.prepare()
    except hr.RootError as exc:
        raise DodasError(str(exc)) from None
    return f"HTCondor {hr.version(root)}: {root}"
