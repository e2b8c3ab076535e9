"""The SSH connections a deployment's Ansible runs leave open end with its run
(configure/connections.py), and only that deployment's: against a real sshd on
loopback, two deployments' masters to the same host, one of them through a
ProxyJump (which keeps a helper process, as a bastion does)."""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest
from support.sshd import Sshd, client_key, free_port, need_openssh

from dodas.configure import connections


@pytest.fixture
def server(tmp_path, monkeypatch):
    need_openssh()
    # a short home: the sockets live under ~/.ansible/cp, and a socket's path is short
    home = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
    monkeypatch.setenv("HOME", str(home))
    addr = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    port = free_port(addr)
    sshd = Sshd(tmp_path, "one", [(addr, port)])
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  User root\n  Port {port}\n  IdentityFile {client_key(tmp_path)}\n"
                   "  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking no\n"
                   "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
    try:
        yield addr, cfg, home
    finally:
        sshd.stop()
        subprocess.run(["rm", "-rf", str(home)], check=False)


def master(cfg: Path, addr: str, mark: str, jump: bool = False) -> Path:
    """Open a persistent master as Ansible does (ControlPersist), in the
    deployment's socket directory, from a process carrying its run mark."""
    directory = Path(connections.control_dir(mark)).expanduser()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = directory / "m"
    extra = ["-o", f"ProxyJump={addr}"] if jump else []
    subprocess.run(["ssh", "-F", str(cfg), "-o", "ControlMaster=auto", "-o", "ControlPersist=300s",
                    "-o", f"ControlPath={sock}", *extra, addr, "true"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True, env={"PATH": "/usr/bin:/bin", "DODAS_RUN": mark})
    return sock


def answers(cfg: Path, sock: Path) -> bool:
    r = subprocess.run(["ssh", "-F", str(cfg), "-o", f"ControlPath={sock}", "-O", "check", "x"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    return r.returncode == 0


def marked(mark: str) -> list[int]:
    """Live processes carrying the run mark (a master rewrites its own environment;
    a ProxyJump helper keeps it)."""
    out = []
    for p in psutil.process_iter(["environ", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and (p.info["environ"] or {}).get("DODAS_RUN") == mark:
            out.append(p.pid)
    return out


def test_a_deployments_connections_end_and_another_ones_stay(server):
    addr, cfg, _home = server
    a, b = "deployment-a", "deployment-b"
    assert connections.control_dir(a) != connections.control_dir(b)
    sock_a = master(cfg, addr, a, jump=True)
    sock_b = master(cfg, addr, b)
    assert answers(cfg, sock_a) and answers(cfg, sock_b)
    assert marked(a), "the ProxyJump helper runs with the run mark"

    connections.close(a)
    assert not answers(cfg, sock_a) and marked(a) == []
    assert not Path(connections.control_dir(a)).expanduser().exists()
    assert answers(cfg, sock_b), "another deployment's connection to the same host is left alone"

    connections.close(b)
    assert not answers(cfg, sock_b)
    connections.close(b)  # nothing left: a no-op


def test_a_stale_socket_is_removed(server):
    """A socket whose master died (a killed dodas, a reboot) goes too, so the
    directory can go."""
    addr, cfg, _home = server
    sock = master(cfg, addr, "deployment-c")
    for p in psutil.process_iter(["cmdline"]):
        if str(sock) in " ".join(p.info["cmdline"] or []):
            p.kill()
            p.wait(10)
    assert sock.exists() and not answers(cfg, sock)
    connections.close("deployment-c")
    assert not sock.parent.exists()
