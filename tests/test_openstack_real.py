"""The OpenStack provider against a real OpenStack (tests/support/openstack_cloud.py:
Debian's Keystone, Glance, Placement, Nova with its fake driver, Neutron with ML2 and
the Linux-bridge agent), through `dodas` commands. What is checked is asked of the
real APIs afterwards: servers ACTIVE with bound ports, the key pair, the security
group with exactly the template's rules, floating IPs; and after `destroy` or a
failed `up`, none of them left. The fake driver starts no machine, so no SSH."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from support.livecluster import Dodas, compute_template
from support.openstack_dodas import (PROVIDER, conn, dodas_on, flavor_name, gone, image, ingress, left, nothing_left,
                                     port_and_ip, servers_of, set_public_ports, write_providers)
from support.waiting import wait_until

pytestmark = pytest.mark.timeout(1800)  # a hang guard: the control plane starts once, slowly on a busy machine


@pytest.fixture
def cloud_dodas(tmp_path, openstack_cloud) -> Dodas:
    """dodas with a home of its own whose provider is the real OpenStack (password auth)."""
    return dodas_on(tmp_path / "home", openstack_cloud)


def test_providers_check_by_password_application_credential_im_auth_file_and_bad_ones(
        cloud_dodas, openstack_cloud, tmp_path):
    lay = openstack_cloud.lay
    # an IM auth file as DODAS users have it: Keystone's root URL (the provider adds /v3),
    # the project as `tenant`, the domain of user and project as `domain`
    auth = tmp_path / "auth.dat"
    line = (f"type = OpenStack; host = {lay.url('keystone')}; username = dodas; tenant = dodas; domain = dodas; "
            "auth_version = 3.x_password")
    auth.write_text("id = im; type = InfrastructureManager; username = someone; password = other\n"
                    f"id = ost; {line}; password = {lay.user_password}\n"
                    f"id = ost-bad; {line}; password = 'not-{lay.user_password}'\n")
    write_providers(cloud_dodas.home, "openstack.test", extra=(
        "  - {name: by-appcred, type: openstack, rank: 2, cloud: dodas-appcred}\n"
        "  - {name: bad-password, type: openstack, rank: 3, cloud: dodas-badpassword}\n"
        f"  - {{name: by-im-file, type: openstack, rank: 4, auth_file: {auth}, auth_id: ost}}\n"
        f"  - {{name: bad-im-file, type: openstack, rank: 5, auth_file: {auth}, auth_id: ost-bad}}\n"))
    r = cloud_dodas.run("providers", "--check", "--json", check=False)
    assert r.returncode == 1, r.stdout + r.stderr  # some providers do not answer
    listed = json.loads(r.stdout)
    assert isinstance(listed, list), listed
    rows = {row["name"]: row["check"] for row in listed}
    assert rows[PROVIDER]["ok"] and rows["by-appcred"]["ok"] and rows["by-im-file"]["ok"], rows
    for bad in ("bad-password", "bad-im-file"):
        assert not rows[bad]["ok"]
        assert rows[bad]["message"].startswith(f"provider {bad}: authentication failed"), rows
    assert {row["name"]: row["credentials"] for row in listed}["by-im-file"] == f"IM auth file {auth} (id ost)"
    assert lay.user_password not in r.stdout + r.stderr


def test_up_reup_and_destroy_on_real_openstack(cloud_dodas, openstack_cloud, tmp_path):
    t = compute_template(tmp_path / "vms.yaml", count=2, cpus=1, mem="512 MB", node="vm",
                         image=image(openstack_cloud), public_port=8080, address_output="public_address")
    cloud_dodas.run("up", t, "--name", "vms")
    st = cloud_dodas.json("status", "vms")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "debian-openstack", st
    dep = st["id"]
    c = conn(openstack_cloud)
    servers = [s for s in c.compute.servers() if (s.metadata or {}).get("dodas_deployment") == dep]
    assert len(servers) == 2 and {s.status for s in servers} == {"ACTIVE"}
    assert {flavor_name(s) for s in servers} == {"m1.tiny"}  # the smallest with 1 vCPU and 512 MiB
    assert {s.key_name for s in servers} == {f"dodas-{dep}"}
    # every server's port is on the private network and bound by the agent
    admin = conn(openstack_cloud, "dodas-admin")
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

    # scale up with `dodas scale`: one server more, the others the same servers
    ids = {i: s.id for i, s in servers_of(openstack_cloud, dep).items()}
    cloud_dodas.run("scale", "vms", "vm", "3")
    three = servers_of(openstack_cloud, dep)
    assert sorted(three) == ["vm[0]", "vm[1]", "vm[2]"] and {i: three[i].id for i in ids} == ids, three
    assert three["vm[2]"].status == "ACTIVE"
    # chosen removal: vm[1]'s server, its port and its floating IP go; vm[0] and vm[2] stay as they were
    doomed = port_and_ip(openstack_cloud, dep, three["vm[1]"])
    kept = {i: port_and_ip(openstack_cloud, dep, three[i]) for i in ("vm[0]", "vm[2]")}
    cloud_dodas.run("up", t, "--name", "vms", "--remove", "vm[1]", "--yes")
    two = servers_of(openstack_cloud, dep)
    assert {i: s.id for i, s in two.items()} == {"vm[0]": ids["vm[0]"], "vm[2]": three["vm[2]"].id}, two
    assert {i: port_and_ip(openstack_cloud, dep, s) for i, s in two.items()} == kept
    assert gone(openstack_cloud, *doomed), doomed
    # one `up` both scales down (`-i n=1`: the highest index goes, with its port and floating IP)
    # and changes the template's ports (8080 out, 8443 and 9090 in): the group's rules follow
    # exactly; the server left and its address stay
    doomed = kept["vm[2]"]
    set_public_ports(Path(t), "vm", {"https": 8443, "other": 9090})
    cloud_dodas.run("up", t, "--name", "vms", "-i", "n=1", "--yes")
    one = servers_of(openstack_cloud, dep)
    assert {i: s.id for i, s in one.items()} == {"vm[0]": ids["vm[0]"]}, one
    assert gone(openstack_cloud, *doomed), doomed
    assert port_and_ip(openstack_cloud, dep, one["vm[0]"]) == kept["vm[0]"]
    rules = ingress(openstack_cloud, dep)
    assert {r for r in rules if r[3] != "self"} == {("tcp", 22, 22, "192.0.2.0/24"), ("tcp", 8443, 8443, "0.0.0.0/0"),
                                                   ("tcp", 9090, 9090, "0.0.0.0/0")}, rules
    assert any(r[3] == "self" for r in rules)

    cloud_dodas.run("destroy", "vms", "--yes")
    assert left(openstack_cloud, dep) == {k: [] for k in left(openstack_cloud, dep)}


def test_kill_9_during_up_then_destroy_purges_by_tag(cloud_dodas, openstack_cloud, tmp_path):
    """The dodas process dies (kill -9) once its server exists, before `up` ends:
    whatever the state recorded, `destroy` finds the servers, floating IPs, security
    group and key pair by the deployment's tag and removes them all."""
    t = compute_template(tmp_path / "crash.yaml", count=1, cpus=1, mem="512 MB", node="vm",
                         image=image(openstack_cloud), public_port=8080)
    c = conn(openstack_cloud)

    def ours() -> list:
        return [s for s in c.compute.servers() if (s.metadata or {}).get("dodas_name") == "crash"]
    proc = cloud_dodas.popen("up", t, "--name", "crash")
    try:
        # the server asked for (no create still on its way to Nova), then the crash
        servers = wait_until(lambda: ours() or proc.poll() is not None, "the deployment's server to exist",
                             timeout=600, every=0.2)
        assert proc.poll() is None, "up ended before the kill: " + "".join(proc.communicate())
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    dep = servers[0].metadata["dodas_deployment"]
    assert any(left(openstack_cloud, dep).values())
    cloud_dodas.run("destroy", "crash", "--yes")
    assert left(openstack_cloud, dep) == {k: [] for k in left(openstack_cloud, dep)}
    assert cloud_dodas.json("status", "crash")["status"] == "DELETE_COMPLETE"


def test_quota_refused_before_anything_exists(cloud_dodas, openstack_cloud, tmp_path):
    admin = conn(openstack_cloud, "dodas-admin")
    pid = openstack_cloud.facts["project_id"]
    admin.set_compute_quotas(pid, instances=1)
    try:
        t = compute_template(tmp_path / "vms.yaml", count=2, cpus=1, mem="512 MB", node="vm",
                             image=image(openstack_cloud))
        r = cloud_dodas.run("up", t, "--name", "toomany", check=False)
        assert r.returncode != 0
        assert "quota exceeded: the deployment needs 2 instances" in r.stdout + r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        c = conn(openstack_cloud)
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
    c = conn(openstack_cloud)
    assert [s for s in c.compute.servers() if s.name.startswith("dodas-")] == []
    assert [k.name for k in c.compute.keypairs() if k.name.startswith("dodas-")] == []
    assert [g.name for g in c.network.security_groups() if g.name.startswith("dodas-")] == []
    assert [ip.id for ip in c.network.ips() if (ip.description or "").startswith("dodas:")] == []


def test_failover_to_the_simulated_provider_when_the_project_is_out_of_quota(cloud_dodas, openstack_cloud,
                                                                             tmp_path):
    """Two providers in rank order, this cloud first: out of Nova's quota it is skipped
    before anything is made; out of Neutron's floating IPs it fails mid-way, told as a
    quota (not as an authentication failure), what it made is removed, and the
    simulated provider takes the deployment. Preflight reads Nova's quotas only:
    Neutron's is hit when the second machine asks for its address (409 OverQuota)."""
    write_providers(cloud_dodas.home, "openstack.test", extra="  - {name: sim, type: simulated, rank: 2}\n")
    # the image by name, so that both providers may take the template (an ost:// URL is OpenStack's only)
    t = compute_template(tmp_path / "fo.yaml", count=2, cpus=1, mem="512 MB", node="vm", image="tiny-image",
                         public_port=8080)
    admin, pid = conn(openstack_cloud, "dodas-admin"), openstack_cloud.facts["project_id"]
    c = conn(openstack_cloud)

    def attempts(name: str) -> tuple[dict, list]:
        st = cloud_dodas.json("status", name)
        # the local provider, always configured, is skipped too: it cannot boot images
        return st, [(a["provider"], a["status"], a.get("error") or "") for a in st["attempts"]
                    if a["provider"] != "local"]

    admin.set_compute_quotas(pid, instances=1)
    try:
        cloud_dodas.run("up", t, "--name", "skipped")
    finally:
        admin.set_compute_quotas(pid, instances=10)
    st, tried = attempts("skipped")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "sim", st
    assert [a[:2] for a in tried] == [(PROVIDER, "skipped"), ("sim", "succeeded")], tried
    assert "quota exceeded: the deployment needs 2 instances" in tried[0][2], tried
    assert nothing_left(openstack_cloud, st["id"]), left(openstack_cloud, st["id"])

    # one machine at a time: Neutron's default quota driver (no lock) lets two concurrent
    # requests through where one would fit
    admin.network.update_quota(pid, floating_ips=1)
    try:
        r = cloud_dodas.run("up", t, "--name", "midway", "--parallelism", "1")
    finally:
        admin.network.update_quota(pid, floating_ips=50)
    assert "trying the next provider: sim" in r.stderr, r.stderr
    st, tried = attempts("midway")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "sim", st
    assert [a[:2] for a in tried] == [(PROVIDER, "failed"), ("sim", "succeeded")], tried
    assert "quota exceeded while allocating a floating IP" in tried[0][2], tried
    assert "authentication failed" not in tried[0][2] and "clean-up problems" not in tried[0][2], tried
    assert nothing_left(openstack_cloud, st["id"]), left(openstack_cloud, st["id"])
    assert [s.id for s in c.compute.servers() if s.name.startswith("dodas-")] == []
    assert len(st["instances"]) == 2
    for name in ("skipped", "midway"):
        cloud_dodas.run("destroy", name, "--yes")
