"""A private network for the tests, made of Linux network namespaces.

    this machine ── veth ── [public host] ── bridge ── [private host 1]
     198.18.N.1           198.18.N.2 (public)    └──── [private host 2] ...
                          198.19.N.1 (private)         198.19.N.10, .11, ...

This machine reaches the public host's public address only; the private hosts
sit on a bridge inside the public host's namespace, with no route from here (and
no forwarding there; an `unreachable` route here): the only way in is to log in to the public host and hop on,
as on a cloud where only the front end has a floating IP. 198.18.0.0/15 is
reserved for network tests (RFC 2544), so nothing real is shadowed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest


def need_netns() -> None:
    """Skip (a failure in CI, see tests/conftest.py) where namespaces cannot be made, saying why."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs as root)")
    if not shutil.which("ip"):
        pytest.skip("the `ip` command (Debian's iproute2) is missing; make.py test installs it")


def ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


@dataclass
class PrivateLab:
    tag: str
    public_ns: str
    public_address: str  # of the public host, as this machine reaches it
    gateway_private: str  # of the public host, on the private network
    private: list[tuple[str, str]] = field(default_factory=list)  # (namespace, address)
    private_net: str = ""

    @property
    def namespaces(self) -> list[str]:
        return [self.public_ns, *(ns for ns, _ in self.private)]

    def run(self, ns: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)

    def remove(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", f"dr{self.tag}"], capture_output=True)
        if self.private_net:
            subprocess.run(["ip", "route", "del", "unreachable", self.private_net], capture_output=True)


def _used_nets() -> set[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    return {".".join(w.split("/")[0].split(".")[:3]) for line in out.splitlines() for w in line.split()
            if w.count(".") == 3 and "/" in w}


def make_lab(privates: int) -> PrivateLab:
    tag = secrets.token_hex(3)
    used = _used_nets()
    n = next(k for k in (secrets.randbelow(250) + 1 for _ in range(100))
             if f"198.18.{k}" not in used and f"198.19.{k}" not in used)
    lab = PrivateLab(tag, f"dodas-{tag}-pub", f"198.18.{n}.2", f"198.19.{n}.1")
    try:
        # like a laptop's, this machine's default route must not lead to the private
        # network (a sandbox's transparent proxy would answer any address)
        ip("route", "add", "unreachable", f"198.19.{n}.0/24")
        lab.private_net = f"198.19.{n}.0/24"
        ip("netns", "add", lab.public_ns)
        ip("-n", lab.public_ns, "link", "set", "lo", "up")
        ip("link", "add", f"dr{tag}", "type", "veth", "peer", "name", f"dp{tag}", "netns", lab.public_ns)
        ip("addr", "add", f"198.18.{n}.1/24", "dev", f"dr{tag}")
        ip("link", "set", f"dr{tag}", "up")
        ip("-n", lab.public_ns, "addr", "add", f"{lab.public_address}/24", "dev", f"dp{tag}")
        ip("-n", lab.public_ns, "link", "set", f"dp{tag}", "up")
        ip("-n", lab.public_ns, "link", "add", f"br{tag}", "type", "bridge")
        ip("-n", lab.public_ns, "addr", "add", f"{lab.gateway_private}/24", "dev", f"br{tag}")
        ip("-n", lab.public_ns, "link", "set", f"br{tag}", "up")
        for i in range(privates):
            ns, addr = f"dodas-{tag}-p{i}", f"198.19.{n}.{10 + i}"
            ip("netns", "add", ns)
            lab.private.append((ns, addr))
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", lab.public_ns, "link", "add", f"b{tag}{i}", "type", "veth", "peer", "name", f"e{tag}{i}",
               "netns", ns)
            ip("-n", lab.public_ns, "link", "set", f"b{tag}{i}", "master", f"br{tag}")
            ip("-n", lab.public_ns, "link", "set", f"b{tag}{i}", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", f"e{tag}{i}")
            ip("-n", ns, "link", "set", f"e{tag}{i}", "up")
    except Exception:
        lab.remove()
        raise
    return lab
