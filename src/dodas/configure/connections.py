"""The SSH connections a deployment's Ansible runs keep open, and their end.

Ansible's connections persist (ControlPersist) so that the next play on a host
need not log in again. Once the engine's run is over nobody will use them, and
one made through a bastion keeps a ProxyJump helper (`ssh -W target:22 jump`)
which, when its target was deleted meanwhile, waits on a dead TCP connection for
as long as the bastion's connection lasts. So the engine closes them when its
run ends (`close`, through the configurator).

Every deployment keeps its masters in a directory of its own (`control_dir`):
ending one deployment's connections never cuts another's run on the same host.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path


def control_dir(run_mark: str) -> str:
    """Where a deployment's masters keep their sockets (Ansible's control path
    directory, `~` expanded by Ansible). Short, as Ansible's own default is: a
    socket's path is limited to about 100 bytes."""
    if not run_mark:
        return "~/.ansible/cp"
    return f"~/.ansible/cp/dodas-{hashlib.sha256(run_mark.encode()).hexdigest()[:12]}"


def close(run_mark: str) -> None:
    """End every connection the runs marked `run_mark` (DODAS_RUN) left open.

    Each master is asked to exit through its socket (`ssh -O exit`): a master
    rewrites its environment for its process title, so no mark finds it. Then
    what still carries the run mark is stopped, which is only helpers:
    ansible-playbook has ended and services get an explicit environment
    (dodas_service). Only under the deployment's lock, so no run of it is
    using them."""
    from dodas import procs

    sockets = Path(control_dir(run_mark)).expanduser()
    for sock in sorted(sockets.iterdir()) if sockets.is_dir() else []:
        if sock.is_socket() and not _exit_master(sock):
            sock.unlink(missing_ok=True)  # no master answers there: a stale socket
    procs.terminate(procs.find_by_env("DODAS_RUN", run_mark), grace=5.0)
    try:
        sockets.rmdir()
    except OSError:  # never made (no host over SSH)
        pass


def _exit_master(sock: Path) -> bool:
    """Ask the SSH master listening on `sock` to exit; whether one answered. The
    host name is a placeholder: the socket alone names the connection. The child
    gets no more environment than it needs (none of dodas's credentials)."""
    try:
        r = subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "dodas-master"],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=30,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0
