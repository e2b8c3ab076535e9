"""Real OpenSSH servers for the tests: on loopback addresses of this machine, or
inside network namespaces (see netns.py) where a private network matters."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def need_openssh() -> None:
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen") or not shutil.which("ssh"):
        pytest.skip("OpenSSH (client and server) not installed (make.py test installs it)")


def client_key(d: Path) -> Path:
    """A key pair whose public half every test sshd accepts (written to d/authorized_keys)."""
    key = d / "client"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (d / "authorized_keys").write_text((d / "client.pub").read_text())
        os.chmod(d / "authorized_keys", 0o600)
    return key


class Sshd:
    """One sshd listening on `listen` ([(address, port)]), in network namespace
    `netns` when given; started and known to listen when the constructor returns."""

    def __init__(self, d: Path, name: str, listen: list[tuple[str, int]], netns: str | None = None) -> None:
        client_key(d)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        hostkey = d / f"host-{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
        self.host_public_key = (d / f"host-{name}.pub").read_text().split()[1]
        cfg = d / f"sshd-{name}.conf"
        cfg.write_text("".join(f"ListenAddress {a}:{p}\n" for a, p in listen) + textwrap.dedent(f"""\
            HostKey {hostkey}
            AuthorizedKeysFile {d / 'authorized_keys'}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            AllowTcpForwarding yes
            PidFile {d / f'sshd-{name}.pid'}
            Subsystem sftp internal-sftp
            """))
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen([*prefix, SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        listening = threading.Event()
        want = len(listen)

        def read() -> None:
            n = 0
            for line in self.proc.stderr:  # type: ignore[union-attr]
                self.log.append(line)
                if "Server listening on" in line:
                    n += 1
                    if n >= want:
                        listening.set()
        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(20):
            self.stop()
            raise RuntimeError(f"sshd {name} did not start: {''.join(self.log)[-800:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def free_port(addr: str, first: int = 2222) -> int:
    import socket

    for port in range(first, first + 100):
        with socket.socket() as s:
            try:
                s.bind((addr, port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free port on {addr}")


def wait_gone(pred, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False
