"""A recording stand-in for an openstacksdk Connection, for unit tests of the
OpenStack provider's request sequence. It keeps a small world (servers, key
pairs, security groups, floating IPs) so that idempotency and clean-up can be
checked, and logs every call as "service.method". It is not a deployment: no
test uses it to claim that something was deployed, only what was asked for."""

from __future__ import annotations

import itertools
from types import SimpleNamespace as NS
from typing import Any

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


class Unauthorized(Exception):
    status_code = 401


class FakeCloud:
    def __init__(self, *, authorized: bool = True, limits: dict | None = None) -> None:
        self.calls: list[str] = []
        self.authorized = authorized
        self.images = {"3d993ab8-5d7b-4362-8fd6-af1391edca39": NS(id="3d993ab8-5d7b-4362-8fd6-af1391edca39",
                                                                  name="ubuntu-22.04")}
        self.flavors = [NS(id="f1", name="m1.small", vcpus=1, ram=2048, disk=20),
                        NS(id="f2", name="m1.medium", vcpus=2, ram=4096, disk=40),
                        NS(id="f3", name="m1.large", vcpus=4, ram=8192, disk=80)]
        self.nets = [NS(id="net-priv", name="private", is_router_external=False),
                     NS(id="net-pub", name="public", is_router_external=True)]
        self.servers: dict[str, Any] = {}
        self.keypairs: dict[str, Any] = {}
        self.sgs: dict[str, Any] = {}
        self.rules: list[Any] = []
        self.fips: dict[str, Any] = {}
        self.limits = NS(**({"max_total_instances": 10, "total_instances_used": 0, "max_total_cores": 20,
                             "total_cores_used": 0, "max_total_ram_size": 51200, "total_ram_used": 0}
                            | (limits or {})))
        self.compute = _Svc(self, "compute")
        self.network = _Svc(self, "network")
        self.image = _Svc(self, "image")

    def log(self, name: str) -> None:
        self.calls.append(name)

    def authorize(self) -> str:
        self.log("authorize")
        if not self.authorized:
            raise Unauthorized("The request you have made requires authentication. (HTTP 401)")
        return "token"

    def get_compute_limits(self) -> Any:
        self.log("get_compute_limits")
        return self.limits

    # -- image ------------------------------------------------------------------------
    def image_find_image(self, ref: str, ignore_missing: bool = True) -> Any:
        return self.images.get(ref) or next((i for i in self.images.values() if i.name == ref), None)

    # -- compute ---------------------------------------------------------------------
    def compute_flavors(self) -> list:
        return list(self.flavors)

    def compute_servers(self, name: str | None = None, **_: Any) -> list:
        import re
        return [s for s in self.servers.values() if name is None or re.search(name, s.name)]

    def compute_find_keypair(self, name: str, ignore_missing: bool = True) -> Any:
        return self.keypairs.get(name)

    def compute_create_keypair(self, name: str, public_key: str) -> Any:
        assert public_key.startswith("ssh-rsa "), "only the public key is sent"
        self.keypairs[name] = NS(name=name, public_key=public_key)
        return self.keypairs[name]

    def compute_delete_keypair(self, name: str, ignore_missing: bool = True) -> None:
        self.keypairs.pop(name, None)

    def compute_create_server(self, **kw: Any) -> Any:
        sid = _id("srv")
        s = NS(id=sid, status="BUILD", addresses={"private": [{"addr": f"10.0.0.{len(self.servers) + 5}",
                                                               "OS-EXT-IPS:type": "fixed"}]}, **kw)
        self.servers[sid] = s
        return s

    def compute_wait_for_server(self, server: Any, wait: float = 0) -> Any:
        server.status = "ACTIVE"
        return server

    def compute_delete_server(self, server: Any, ignore_missing: bool = True) -> None:
        self.servers.pop(server.id, None)

    def compute_wait_for_delete(self, server: Any, wait: float = 0) -> None:
        return None

    # -- network ----------------------------------------------------------------------
    def network_find_security_group(self, name: str, ignore_missing: bool = True) -> Any:
        return self.sgs.get(name)

    def network_create_security_group(self, name: str, description: str) -> Any:
        self.sgs[name] = NS(id=_id("sg"), name=name, description=description)
        for ethertype in ("IPv4", "IPv6"):  # as Neutron does: everything out
            self._rule(security_group_id=self.sgs[name].id, direction="egress", ethertype=ethertype)
        return self.sgs[name]

    def _rule(self, **kw: Any) -> Any:
        rule = NS(**({"id": _id("rule"), "protocol": None, "port_range_min": None, "port_range_max": None,
                      "remote_ip_prefix": None, "remote_group_id": None} | kw))
        self.rules.append(rule)
        return rule

    def network_create_security_group_rule(self, **kw: Any) -> Any:
        assert kw["security_group_id"] in {sg.id for sg in self.sgs.values()}
        assert kw.get("ethertype") in ("IPv4", "IPv6") and kw.get("direction") == "ingress"
        return self._rule(**kw)

    def network_security_group_rules(self, security_group_id: str | None = None, **_: Any) -> list:
        return [r for r in self.rules if security_group_id in (None, r.security_group_id)]

    def network_delete_security_group_rule(self, rule: Any, ignore_missing: bool = True) -> None:
        self.rules = [r for r in self.rules if r.id != rule.id]

    def network_delete_security_group(self, sg: Any, ignore_missing: bool = True) -> None:
        self.sgs.pop(sg.name, None)
        self.rules = [r for r in self.rules if r.security_group_id != sg.id]

    def ingress(self, sg_name: str) -> set[tuple]:
        """A group's inbound rules: (protocol, port min, port max, remote CIDR or group)."""
        sg = self.sgs[sg_name]
        return {(r.protocol, r.port_range_min, r.port_range_max, r.remote_ip_prefix or r.remote_group_id)
                for r in self.rules if r.security_group_id == sg.id and r.direction == "ingress"}

    def network_networks(self) -> list:
        return list(self.nets)

    def network_find_network(self, name: str, ignore_missing: bool = True) -> Any:
        return next((n for n in self.nets if n.name == name or n.id == name), None)

    def network_ports(self, device_id: str) -> list:
        return [NS(id=f"port-{device_id}")] if device_id in self.servers else []

    def network_ips(self, description: str | None = None) -> list:
        return [ip for ip in self.fips.values() if description is None or ip.description == description]

    def network_create_ip(self, floating_network_id: str, port_id: str, description: str) -> Any:
        fid = _id("fip")
        self.fips[fid] = NS(id=fid, floating_ip_address=f"192.0.2.{len(self.fips) + 10}", description=description,
                            port_id=port_id, floating_network_id=floating_network_id)
        return self.fips[fid]

    def network_delete_ip(self, ip: Any, ignore_missing: bool = True) -> None:
        self.fips.pop(ip.id, None)


class _Svc:
    def __init__(self, cloud: FakeCloud, prefix: str) -> None:
        self._cloud, self._prefix = cloud, prefix

    def __getattr__(self, name: str) -> Any:
        impl = getattr(self._cloud, f"{self._prefix}_{name}")

        def call(*a: Any, **kw: Any) -> Any:
            self._cloud.log(f"{self._prefix}.{name}")
            return impl(*a, **kw)
        return call
