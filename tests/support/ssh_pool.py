"""A pool of real OpenSSH servers on loopback addresses for the ssh provider: the
`ssh_hosts` fixture (three sshd on 127.0.1.1-3, one per module) and `ssh_dodas`,
a dodas on a home of its own whose services on the hosts are killed afterwards
(both plugins of tests/conftest.py); `configure` makes them its provider."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.livecluster import Dodas, kill_leftovers
from support.sshd import Sshd, client_key, free_port, need_openssh

WORKDIR = Path("/var/tmp/dodas")  # where the ssh provider puts services on its hosts


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory):
    """Three sshd servers on 127.0.1.1-3, one client key that logs in as this user."""
    need_openssh()
    d = tmp_path_factory.mktemp("sshd")
    servers, hosts = [], []
    try:
        for n in (1, 2, 3):
            addr = f"127.0.1.{n}"
            port = free_port(addr)
            servers.append(Sshd(d, f"h{n}", [(addr, port)]))
            hosts.append({"address": addr, "port": port})
        yield {"hosts": hosts, "key": str(client_key(d)), "user": os.environ.get("USER") or "root"}
    finally:
        for s in servers:
            s.stop()


def configure(home: Path, pool: dict) -> None:
    """The pool (`ssh_hosts`) as the only provider, "lab", of the dodas on `home`."""
    import yaml

    extra: dict = {}
    hosts = [{"address": h["address"], "port": h["port"], "user": pool["user"], "key": pool["key"],
              "num_cpus": 1, "mem_mib": 2048, **extra} for h in pool["hosts"]]
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump({"providers": [{"name": "lab", "type": "ssh", "rank": 1, "hosts": hosts}]}))


@pytest.fixture
def ssh_dodas(tmp_path) -> Dodas:
    """dodas on a home of its own; what it started on the hosts is killed after the test
    (its own deployments' only: other tests may run services on the same hosts meanwhile)."""
    dodas = Dodas(tmp_path / "home")
    yield dodas
    for dep in dodas.json("list", "--all"):
        kill_leftovers(WORKDIR / dep["id"])
