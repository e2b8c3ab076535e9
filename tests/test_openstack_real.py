"""The OpenStack provider against a real OpenStack (tests/support/openstack_cloud.py:
Debian's Keystone, Glance, Placement, Nova with its fake driver, Neutron with ML2 and
the Linux-bridge agent), through `dodas` commands. What is checked is asked of the
real APIs afterwards: servers ACTIVE with bound ports, the key pair, the security
group with exactly the template's rules, floating IPs; and after `destroy` or a
failed `up`, none of them left. The fake driver starts no machine, so no SSH."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support.livecluster import Dodas, compute_template

pytestmark = pytest.mark.timeout(1800)  # a hang guard: the control plane starts once, slowly on a busy machine


def write_providers(home: Path, image_host: str, cloud: str = "dodas", extra: str = "") -> None:
    cfg = home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(textwrap.dedent(f"""\
        providers:
          - name: debian-openstack
            type: openstack
            rank: 1
            cloud: {cloud}
            image_hosts: [{image_host}]
            network: private
            public_network: public
            timeout: 600
            ssh_from: 192.0.2.0/24
        """) + extra)


@pytest.fixture
def cloud_dodas(tmp_path, openstack_cloud) -> Dodas:
    """dodas with a home of its own whose provider is the real OpenStack (password auth)."""
    dodas = Dodas(tmp_path / "home")
    for k in [k for k in dodas.env if k.startswith("OS_")]:
        dodas.env.pop(k)
    dodas.env["OS_CLIENT_CONFIG_FILE"] = str(openstack_cloud.clouds_yaml)
    write_providers(dodas.home, "openstack.test")
    return dodas


def image(cloud) -> str:
    return f"ost://openstack.test/{cloud.facts['image_id']}"


def left(cloud, dep_id: str) -> dict[str, list[str]]:
    """Everything of one deployment the project still holds, asked of each API."""
    c = cloud.connect("dodas")
    servers = [s for s in c.compute.servers() if (s.metadata or {}).get("dodas_deployment") == dep_id]
    server_ids = {s.id for s in servers}
    return {
        "servers": [s.id for s in servers],
        "ports": [p.id for p in c.network.ports() if p.device_id in server_ids],
        "floating_ips": [ip.id for ip in c.network.ips() if (ip.description or "").startswith(f"dodas:{dep_id}:")],
        "security_groups": [g.id for g in c.network.security_groups() if g.name == f"dodas-{dep_id}"],
        "key_pairs": [k.name for k in c.compute.keypairs() if k.name == f"dodas-{dep_id}"],
    }


def flavor_name(server: Any) -> str | None:
    """The flavour a server was made with (Nova embeds it, named `original_name`)."""
    fl = server.flavor
    return fl.get("original_name") if isinstance(fl, dict) else getattr(fl, "original_name", None)


def ingress(cloud, dep_id: str) -> set[tuple[Any, ...]]:
    c = cloud.connect("dodas")
    (g,) = [g for g in c.network.security_groups() if g.name == f"dodas-{dep_id}"]
    return {(r.protocol, r.port_range_min, r.port_range_max, "self" if r.remote_group_id == g.id
             else r.remote_ip_prefix) for r in c.network.security_group_rules(security_group_id=g.id)
            if r.direction == "ingress"}


def test_providers_check_by_password_application_credential_and_bad_password(cloud_dodas, openstack_cloud):
    write_providers(cloud_dodas.home, "openstack.test", extra=(
        "  - {name: by-appcred, type: openstack, rank: 2, cloud: dodas-appcred}\n"
        "  - {name: bad-password, type: openstack, rank: 3, cloud: dodas-badpassword}\n"))
    r = cloud_dodas.run("providers", "--check", "--json", check=False)
    assert r.returncode == 1, r.stdout + r.stderr  # one provider does not answer
    listed = json.loads(r.stdout)
    assert isinstance(listed, list), listed
    rows = {row["name"]: row["check"] for row in listed}
    assert rows["debian-openstack"]["ok"] and rows["by-appcred"]["ok"], rows
    assert not rows["bad-password"]["ok"]
    assert rows["bad-password"]["message"].startswith("provider bad-password: authentication failed"), rows
    assert openstack_cloud.lay.user_password not in r.stdout + r.stderr


def test_up_reup_and_destroy_on_real_openstack(cloud_dodas, openstack_cloud, tmp_path):
    t = compute_template(tmp_path / "vms.yaml", count=2, cpus=1, mem="512 MB", node="vm",
                         image=image(openstack_cloud), public_port=8080, address_output="public_address")
    cloud_dodas.run("up", t, "--name", "vms")
    st = cloud_dodas.json("status", "vms")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "debian-openstack", st
    dep = st["id"]
    c = openstack_cloud.connect("dodas")
    servers = [s for s in c.compute.servers() if (s.metadata or {}).get("dodas_deployment") == dep]
    assert len(servers) == 2 and {s.status for s in servers} == {"ACTIVE"}
    assert {flavor_name(s) for s in servers} == {"m1.tiny"}  # the smallest with 1 vCPU and 512 MiB
    assert {s.key_name for s in servers} == {f"dodas-{dep}"}
    # every server's port is on the private network and bound by the agent
    admin = openstack_cloud.connect()
    for s in servers:
        (port,) = list(admin.network.ports(device_id=s.id))
        assert port.network_id == openstack_cloud.facts["private_network_id"]
        assert port.binding_vif_type == "bridge", port.binding_vif_type
    # a floating IP on each PUBLIC machine, on its port, and those addresses are the outputs
    fips = [ip for ip in c.network.ips() if (ip.description or "").startswith(f"dodas:{dep}:")]
    assert len(fips) == 2 and all(ip.port_id for ip in fips)
    assert sorted(cloud_dodas.outputs("vms")["addresses"]) == sorted(ip.floating_ip_address for ip in fips)
    # the group: SSH from ssh_from, the template's port, everything between the deployment's machines
    rules = ingress(openstack_cloud, dep)
    assert ("tcp", 22, 22, "192.0.2.0/24") in rules and ("tcp", 8080, 8080, "0.0.0.0/0") in rules
    assert any(r[3] == "self" for r in rules)
    assert {r for r in rules if r[3] != "self"} == {("tcp", 22, 22, "192.0.2.0/24"), ("tcp", 8080, 8080, "0.0.0.0/0")}

    # a second `up` changes nothing: same servers, same addresses
    cloud_dodas.run("up", t, "--name", "vms")
    again = {s.id for s in c.compute.servers() if (s.metadata or {}).get("dodas_deployment") == dep}
    assert again == {s.id for s in servers}

    cloud_dodas.run("destroy", "vms", "--yes")
    assert left(openstack_cloud, dep) == {k: [] for k in left(openstack_cloud, dep)}


def test_quota_refused_before_anything_exists(cloud_dodas, openstack_cloud, tmp_path):
    admin = openstack_cloud.connect()
    pid = openstack_cloud.facts["project_id"]
    admin.set_compute_quotas(pid, instances=1)
    try:
        t = compute_template(tmp_path / "vms.yaml", count=2, cpus=1, mem="512 MB", node="vm",
                             image=image(openstack_cloud))
        r = cloud_dodas.run("up", t, "--name", "toomany", check=False)
        assert r.returncode != 0
        assert "quota exceeded: the deployment needs 2 instances" in r.stdout + r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        c = openstack_cloud.connect("dodas")
        assert not list(c.compute.servers()) and not [g for g in c.network.security_groups()
                                                      if g.name.startswith("dodas-")]
    finally:
        admin.set_compute_quotas(pid, instances=10)


def test_a_server_in_error_is_a_failed_create_that_leaves_nothing(cloud_dodas, openstack_cloud, tmp_path):
    # 16 vCPUs: a flavour exists (x1.huge) and the quota allows it, but the fake hypervisor
    # has 10: Nova's scheduler finds no host and the server goes to ERROR
    t = compute_template(tmp_path / "big.yaml", count=1, cpus=16, mem="1 GB", node="vm",
                         image=image(openstack_cloud))
    r = cloud_dodas.run("up", t, "--name", "big", check=False)
    assert r.returncode != 0, r.stdout
    out = r.stdout + r.stderr
    assert "Traceback" not in r.stderr, out
    assert "the server went to ERROR: No valid host was found" in out, out
    c = openstack_cloud.connect("dodas")
    assert [s for s in c.compute.servers() if s.name.startswith("dodas-")] == []
    assert [k.name for k in c.compute.keypairs() if k.name.startswith("dodas-")] == []
    assert [g.name for g in c.network.security_groups() if g.name.startswith("dodas-")] == []
    assert [ip.id for ip in c.network.ips() if (ip.description or "").startswith("dodas:")] == []


def test_a_quota_hit_midway_fails_with_the_quota_named_and_leaves_nothing(cloud_dodas, openstack_cloud, tmp_path):
    # preflight reads Nova's quotas; Neutron's floating-IP quota is hit only when the
    # second machine asks for its address (Neutron answers 409 OverQuota)
    admin = openstack_cloud.connect()
    pid = openstack_cloud.facts["project_id"]
    admin.network.update_quota(pid, floating_ips=1)
    try:
        t = compute_template(tmp_path / "vms.yaml", count=2, cpus=1, mem="512 MB", node="vm",
                             image=image(openstack_cloud), public_port=8080)
        r = cloud_dodas.run("up", t, "--name", "fips", check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "Traceback" not in r.stderr, out
        assert "quota exceeded while allocating a floating IP" in out, out
        assert "authentication failed" not in out, out
        c = openstack_cloud.connect("dodas")
        assert [s.id for s in c.compute.servers() if s.name.startswith("dodas-")] == []
        assert [ip.id for ip in c.network.ips() if (ip.description or "").startswith("dodas:")] == []
        assert [g.name for g in c.network.security_groups() if g.name.startswith("dodas-")] == []
    finally:
        admin.network.update_quota(pid, floating_ips=50)
