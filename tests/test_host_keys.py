"""dodas's known_hosts after destroy: a cloud machine's host keys are forgotten
(its address, a floating IP, goes to another machine next, with another key),
an SSH pool's hosts keep theirs (the same machines, claimed again later)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.moto_ec2 import an_ami, ours, template


def a_host_key(tmp_path: Path, name: str) -> str:
    """A real ed25519 public key, as ssh would have learnt it from a server."""
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = (tmp_path / f"{name}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def known(known_hosts: Path, address: str) -> bool:
    return subprocess.run(["ssh-keygen", "-F", address, "-f", str(known_hosts)], capture_output=True).returncode == 0


def test_destroy_forgets_the_host_keys_of_cloud_machines(cloud, moto, tmp_path):
    t = template(tmp_path, f"aws://us-east-1/{an_ami(moto)}", count=2)
    cloud.run("up", t, "--name", "keys")
    st = cloud.json("status", "keys")
    addresses = sorted({a for i in ours(moto, st["id"]) for a in (i.get("PublicIpAddress"), i.get("PrivateIpAddress"))
                        if a})
    assert len(addresses) == 4, addresses
    # as if dodas had logged in to each machine: ssh learnt their keys into dodas's file
    kh = cloud.home / "data" / "ssh" / "known_hosts"
    kh.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{a} {a_host_key(tmp_path, f'k{n}')}" for n, a in enumerate(addresses)]
    lines.append(f"203.0.113.9 {a_host_key(tmp_path, 'other')}")  # another deployment's machine
    kh.write_text("\n".join(lines) + "\n")
    cloud.run("destroy", "keys", "--yes")
    assert [a for a in addresses if known(kh, a)] == [], "a deleted machine's keys are forgotten"
    assert known(kh, "203.0.113.9"), "keys of machines that still exist stay"
    assert not kh.with_name("known_hosts.old").exists(), "no backup keeps the forgotten keys"
