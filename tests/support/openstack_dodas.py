"""`dodas` pointed at the suite's real OpenStack (openstack_cloud.py), and what the
OpenStack tests ask of its APIs afterwards: what a deployment still holds there,
a server's port and floating IP, the security group's ingress rules. Shared by
tests/test_openstack_real*.py (no test module imports another)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from support.livecluster import Dodas

#: the provider's section of providers.yaml, rank 1
PROVIDER = "debian-openstack"


def write_providers(home: Path, image_host: str, cloud: str = "dodas", extra: str = "") -> None:
    """providers.yaml: the real OpenStack first, then any `extra` entries (YAML list items)."""
    cfg = home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(textwrap.dedent(f"""\
        providers:
          - name: {PROVIDER}
            type: openstack
            rank: 1
            cloud: {cloud}
            image_hosts: [{image_host}]
            network: private
            public_network: public
            timeout: 600
            ssh_from: 192.0.2.0/24
        """) + extra)


def dodas_on(home: Path, cloud: Any) -> Dodas:
    """dodas with a home of its own whose provider is the real OpenStack (password auth)."""
    dodas = Dodas(home)
    for k in [k for k in dodas.env if k.startswith("OS_")]:
        dodas.env.pop(k)
    dodas.env["OS_CLIENT_CONFIG_FILE"] = str(cloud.clouds_yaml)
    write_providers(dodas.home, "openstack.test")
    return dodas


_CONNECTIONS: dict[tuple[str, str], Any] = {}


def conn(cloud: Any, name: str = "dodas") -> Any:
    """One openstacksdk connection per cloud and clouds.yaml entry, kept: each new one
    authenticates and discovers every service's versions again, seconds on a busy
    machine, and the checks below ask the APIs often."""
    key = (str(cloud.clouds_yaml), name)
    if key not in _CONNECTIONS:
        _CONNECTIONS[key] = cloud.connect(name)
    return _CONNECTIONS[key]


def image(cloud: Any) -> str:
    """The seeded image as an `ost://` URL of the provider's image host."""
    return f"ost://openstack.test/{cloud.facts['image_id']}"


def servers_of(cloud: Any, dep_id: str) -> dict[str, Any]:
    """The deployment's servers by dodas's instance id (`vm[0]`), from Nova's metadata."""
    c = conn(cloud)
    return {s.metadata["dodas_instance"]: s for s in c.compute.servers()
            if (s.metadata or {}).get("dodas_deployment") == dep_id}


def left(cloud: Any, dep_id: str) -> dict[str, list[str]]:
    """Everything of one deployment the project still holds, asked of each API."""
    c = conn(cloud)
    servers = [s for s in c.compute.servers() if (s.metadata or {}).get("dodas_deployment") == dep_id]
    server_ids = {s.id for s in servers}
    return {
        "servers": [s.id for s in servers],
        "ports": [p.id for p in c.network.ports() if p.device_id in server_ids],
        "floating_ips": [ip.id for ip in c.network.ips() if (ip.description or "").startswith(f"dodas:{dep_id}:")],
        "security_groups": [g.id for g in c.network.security_groups() if g.name == f"dodas-{dep_id}"],
        "key_pairs": [k.name for k in c.compute.keypairs() if k.name == f"dodas-{dep_id}"],
    }


def nothing_left(cloud: Any, dep_id: str) -> bool:
    return not any(left(cloud, dep_id).values())


def port_and_ip(cloud: Any, dep_id: str, server: Any) -> tuple[str, str]:
    """(port id, floating IP id) of one server: its only port, and the floating IP on it
    that carries the deployment's tag."""
    c = conn(cloud)
    (port,) = list(c.network.ports(device_id=server.id))
    (fip,) = [ip for ip in c.network.ips(port_id=port.id) if (ip.description or "").startswith(f"dodas:{dep_id}:")]
    return port.id, fip.id


def gone(cloud: Any, port_id: str, fip_id: str) -> bool:
    """Neither the port nor the floating IP exists any more (asked by id)."""
    c = conn(cloud)
    return c.network.find_port(port_id) is None and c.network.find_ip(fip_id) is None


def flavor_name(server: Any) -> str | None:
    """The flavour a server was made with (Nova embeds it, named `original_name`)."""
    fl = server.flavor
    return fl.get("original_name") if isinstance(fl, dict) else getattr(fl, "original_name", None)


def ingress(cloud: Any, dep_id: str) -> set[tuple[Any, ...]]:
    """The deployment's security group's ingress rules as (protocol, low, high, remote),
    remote "self" for the rule between the group's own members."""
    c = conn(cloud)
    (g,) = [g for g in c.network.security_groups() if g.name == f"dodas-{dep_id}"]
    return {(r.protocol, r.port_range_min, r.port_range_max, "self" if r.remote_group_id == g.id
             else r.remote_ip_prefix) for r in c.network.security_group_rules(security_group_id=g.id)
            if r.direction == "ingress"}


def set_public_ports(template: Path, node: str, ports: dict[str, int]) -> None:
    """Rewrite a compute_template's endpoint to exactly these public TCP ports."""
    doc = yaml.safe_load(template.read_text())
    caps = doc["topology_template"]["node_templates"][node]["capabilities"]
    caps["endpoint"] = {"properties": {"network_name": "PUBLIC", "ports": {
        name: {"protocol": "tcp", "source": port} for name, port in ports.items()}}}
    template.write_text(yaml.safe_dump(doc, sort_keys=False))
