"""Finding and stopping processes by a marker in their environment.

dodas marks what it starts: ansible-playbook runs carry DODAS_RUN=<deployment
id>, services DODAS_MACHINE=<machine directory>. Markers are inherited by every
child (Spark executors, notebook kernels), so a crash that loses pid files, or a
kill -9 of dodas itself, never loses track of a process. Reads /proc: Linux only,
like the local provider.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def find_by_env(name: str, value: str, *, below: bool = False) -> list[int]:
    """Pids whose environment has name=value (or, with `below`, name=value/...)."""
    needle = f"{name}={value}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in env.split(b"\0"):
            if item == needle or (below and item.startswith(needle + b"/")):
                out.append(int(entry.name))
                break
    return [p for p in out if alive(p)]


def terminate(pids: list[int], grace: float = 10.0) -> None:
    """TERM, then KILL whatever is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.1)
