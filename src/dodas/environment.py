"""Failures of the machine dodas runs on, rather than of dodas.

A full or read-only disk, a directory that cannot be written, a state database
that cannot be written: these reach the user as errors of their environment,
never as "a bug". Apart from `dodas.errors` because saying where the state
database is needs `dodas.state.db`, which itself raises dodas's errors: errors
must stay beneath everything, this module sits beside the state.
"""

from __future__ import annotations


def environment_problem(exc: BaseException) -> str | None:
    """A sentence for a failure of the machine rather than of dodas (a full or
    read-only disk, a directory that cannot be written, a database that cannot be
    written), naming the path and the cause; None for anything else.

    These reach the user as errors of their environment, never as "a bug"."""
    if isinstance(exc, OSError) and exc.errno is not None:
        what = exc.strerror or str(exc)
        where = exc.filename if exc.filename is not None else None
        return f"{where}: {what}" if where else what
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    if type(exc).__name__ == "OperationalError" and orig is not None:
        text = str(orig)
        if any(s in text.lower() for s in ("disk", "full", "read-only", "readonly", "unable to open",
                                           "disk i/o", "no space")):
            from dodas.state.db import describe_url
            return f"the state database ({describe_url()}) cannot be written or read: {text}"
    return None
