"""The OpenStack provider's request sequence, against a recording stand-in for
openstacksdk (no OpenStack can be reached from here: see the README). What is
checked is what the provider asks the cloud for, in which order, and that create
is idempotent and destroy removes everything tagged with the deployment."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from support.fake_openstack import FakeCloud

from dodas.model.deployment import ComputeSpec, Port
from dodas.model.network import Ingress
from dodas.providers.base import ComputeRequest, ProviderError
from dodas.providers.config import ProviderConfig, openstack_auth_from_im, parse_im_auth
from dodas.providers.openstack import OpenStackProvider

IMAGE = "ost://openstack.example.org/3d993ab8-5d7b-4362-8fd6-af1391edca39"
DEP = "1234abcd-dep"


def provider(cloud: FakeCloud, **opts) -> OpenStackProvider:
    cfg = ProviderConfig("recas", "openstack", 1, ["openstack.example.org"], [], opts)
    p = OpenStackProvider(cfg, connect=lambda _cfg: cloud)
    return p


def prepared(cloud: FakeCloud, *ingress: Ingress, **opts) -> OpenStackProvider:
    """A provider after the engine's `prepare` (the template's ingress: 30888/tcp)."""
    p = provider(cloud, **opts)
    asyncio.run(p.prepare(DEP, "demo", ingress or (Ingress("tcp", 30888),)))
    return p


def request(inst: str = "vm[0]", network: str = "PUBLIC", **spec) -> ComputeRequest:
    s = ComputeSpec(num_cpus=spec.get("cpus", 2), mem_mib=spec.get("mem", 3815), image=spec.get("image", IMAGE),
                    network=network, ports=(Port("jupyter", "tcp", 30888),), instance_type=spec.get("itype"))
    return ComputeRequest(DEP, "demo", inst, s)


def test_create_sequence_and_idempotency():
    cloud = FakeCloud()
    p = prepared(cloud)
    assert cloud.calls == [
        "compute.find_keypair", "compute.create_keypair",
        "network.find_security_group", "network.create_security_group",
        "network.security_group_rules", "network.create_security_group_rule",
        "network.create_security_group_rule", "network.create_security_group_rule",
    ]
    cloud.calls.clear()
    m = asyncio.run(p.create(request()))
    assert cloud.calls == [
        "compute.servers",                      # is it there already? (by name and metadata)
        "image.find_image", "compute.flavors", "network.networks",
        "compute.create_server", "compute.wait_for_server",
        "network.ips", "network.networks", "network.ports", "network.create_ip",
    ]
    (server,) = cloud.servers.values()
    assert server.flavor_id == "f2", "the smallest flavour with 2 vcpus and 3815 MiB"
    assert server.image_id == "3d993ab8-5d7b-4362-8fd6-af1391edca39"
    assert server.metadata["dodas_deployment"] == DEP and server.metadata["dodas_instance"] == "vm[0]"
    assert server.networks == [{"uuid": "net-priv"}] and server.key_name == f"dodas-{DEP}"
    assert server.security_groups == [{"name": f"dodas-{DEP}"}]
    sg_id = cloud.sgs[f"dodas-{DEP}"].id
    assert cloud.ingress(f"dodas-{DEP}") == {("tcp", 22, 22, "0.0.0.0/0"), ("tcp", 30888, 30888, "0.0.0.0/0"),
                                             (None, None, None, sg_id)}
    assert m.public_address.startswith("192.0.2.") and m.private_address.startswith("10.0.0.")
    (fip,) = cloud.fips.values()
    assert fip.description == "dodas:1234abcd-dep:vm[0]"
    # again (as after a crash): the same server, no second one, no second floating IP
    cloud.calls.clear()
    again = asyncio.run(p.create(request()))
    assert again.provider_id == m.provider_id and len(cloud.servers) == 1 and len(cloud.fips) == 1
    assert "compute.create_server" not in cloud.calls and "network.create_ip" not in cloud.calls


def test_private_instance_gets_no_floating_ip():
    """... and no public address: the engine reaches it through a bastion."""
    cloud = FakeCloud()
    m = asyncio.run(prepared(cloud).create(request(network="PRIVATE")))
    assert cloud.fips == {} and m.public_address is None and m.private_address.startswith("10.0.0.")


def test_rules_follow_the_plan_on_every_prepare():
    """The group's rules are reconciled with the plan's ingress each time: ports the
    template no longer has are closed, new ones opened, a rule someone added by
    hand is revoked, and an unchanged plan changes nothing."""
    cloud = FakeCloud()
    p = prepared(cloud, Ingress("tcp", 8080), Ingress("tcp", 8888), ssh_from="192.0.2.0/24")
    name = f"dodas-{DEP}"
    sg_id = cloud.sgs[name].id
    base = {("tcp", 22, 22, "192.0.2.0/24"), (None, None, None, sg_id)}
    assert cloud.ingress(name) == base | {("tcp", 8080, 8080, "0.0.0.0/0"), ("tcp", 8888, 8888, "0.0.0.0/0")}
    asyncio.run(p.create(request()))
    cloud.network.create_security_group_rule(security_group_id=sg_id, direction="ingress", ethertype="IPv4",
                                             protocol="tcp", port_range_min=3306, port_range_max=3306,
                                             remote_ip_prefix="0.0.0.0/0")
    again = provider(cloud, ssh_from="192.0.2.0/24")  # the next `dodas up` is another process
    asyncio.run(again.prepare(DEP, "demo", (Ingress("tcp", 8888), Ingress("udp", 9000, "10.1.0.0/16"))))
    assert cloud.ingress(name) == base | {("tcp", 8888, 8888, "0.0.0.0/0"), ("udp", 9000, 9000, "10.1.0.0/16")}
    assert len(cloud.sgs) == 1 and len(cloud.keypairs) == 1
    cloud.calls.clear()
    asyncio.run(again.prepare(DEP, "demo", (Ingress("tcp", 8888), Ingress("udp", 9000, "10.1.0.0/16"))))
    assert not [c for c in cloud.calls if c.startswith(("network.create", "network.delete", "compute.create"))]
    # egress stays as the cloud made it
    assert sum(1 for r in cloud.rules if r.direction == "egress") == 2


def test_instance_type_wins_over_sizes():
    cloud = FakeCloud()
    asyncio.run(prepared(cloud).create(request(itype="m1.large", cpus=1, mem=100)))
    assert next(iter(cloud.servers.values())).flavor_id == "f3"


def test_delete_and_purge_remove_everything_tagged():
    cloud = FakeCloud()
    p = prepared(cloud)
    asyncio.run(p.create(request("vm[0]")))
    asyncio.run(p.create(request("vm[1]")))
    cloud.calls.clear()
    asyncio.run(p.delete("1234abcd-dep", "vm[0]", None))
    assert cloud.calls[:2] == ["network.ips", "network.delete_ip"]
    assert cloud.calls[-2:] == ["compute.delete_server", "compute.wait_for_delete"]
    assert len(cloud.servers) == 1 and len(cloud.fips) == 1
    # the state lost vm[1]: purge finds it by its tags, and the group and key too
    assert len(asyncio.run(p.resources("1234abcd-dep"))) == 4
    asyncio.run(p.purge("1234abcd-dep"))
    assert cloud.servers == {} and cloud.fips == {} and cloud.sgs == {} and cloud.keypairs == {}
    assert asyncio.run(p.resources("1234abcd-dep")) == []
    asyncio.run(p.delete("1234abcd-dep", "vm[0]", None))  # already gone: fine


def _model(tmp_path, count=2, cpus=2, image=IMAGE):
    from dodas import services
    t = tmp_path / "t.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          node_templates:
            vm:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {count}}}}}
                host: {{properties: {{num_cpus: {cpus}, mem_size: 4 GB}}}}
                os: {{properties: {{image: "{image}"}}}}
        """))
    return services.plan(str(t)).model


def test_preflight_problems_are_named_before_anything_is_made(tmp_path):
    cloud = FakeCloud(limits={"max_total_instances": 1})
    problems = provider(cloud).preflight(_model(tmp_path, count=2, cpus=64,
                                                image="ost://openstack.example.org/no-such-image"))
    text = "\n".join(problems)
    assert "unknown image ost://openstack.example.org/no-such-image" in text
    assert "no flavour has 64 vcpus" in text
    assert all(p.startswith("provider recas:") for p in problems)
    assert not any(c.startswith(("compute.create", "network.create")) for c in cloud.calls)
    cloud = FakeCloud(limits={"max_total_instances": 1})
    assert "quota exceeded: the deployment needs 2 instances, 0 are in use and the project may use 1" in \
        "\n".join(provider(cloud).preflight(_model(tmp_path, count=2)))


def test_bad_credentials():
    cloud = FakeCloud(authorized=False)
    (problem,) = provider(cloud).preflight(_model_stub())
    assert problem.startswith("provider recas: authentication failed")
    with pytest.raises(ProviderError, match="authentication failed"):
        asyncio.run(provider(cloud).check())


def _model_stub():
    from dodas.model.deployment import DeploymentModel
    return DeploymentModel("t", "", "tosca_simple_yaml_1_0", {}, {}, {})


def test_im_auth_lines():
    line = ('id = ost; type = OpenStack; host = https://keystone.example.org:5000; username = alice; '
            'password = "s3;cret"; tenant = physics; auth_version = 3.x_password\n'
            "id = egi; type = OpenStack; host = https://egi.example.org:5000/v3; username = egi.eu; "
            "password = ACCESS_TOKEN; tenant = openid; auth_version = 3.x_oidc_access_token\n")
    ost, egi = parse_im_auth(line)
    assert ost["password"] == "s3;cret"
    a = openstack_auth_from_im(ost)
    assert a["auth_type"] == "password" and a["auth"]["auth_url"] == "https://keystone.example.org:5000/v3"
    assert a["auth"]["project_name"] == "physics"
    b = openstack_auth_from_im(egi)
    assert b["auth_type"] == "v3oidcaccesstoken" and b["auth"]["access_token"] == "ACCESS_TOKEN"
    assert b["auth"]["auth_url"] == "https://egi.example.org:5000/v3"


def test_deploy_through_the_engine(tmp_path, monkeypatch, dodas_home):
    """`dodas up` and `destroy` with the OpenStack provider, in-process, on the stand-in cloud."""
    from dodas.cli.progress import factory
    from dodas.providers import openstack
    from dodas.services import deploy, read

    cloud = FakeCloud()
    monkeypatch.setattr(openstack, "_connect", lambda _cfg: cloud)
    cfg = dodas_home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("providers:\n  - {name: recas, type: openstack, rank: 1, cloud: recas, wait_ssh: false,\n"
                   "     image_hosts: [openstack.example.org]}\n")

    quiet = factory(quiet=True)
    t = tmp_path / "t.yaml"

    def write(ports: str) -> str:
        t.write_text(textwrap.dedent(f"""\
            tosca_definitions_version: tosca_simple_yaml_1_0
            topology_template:
              node_templates:
                vm:
                  type: tosca.nodes.indigo.Compute
                  capabilities:
                    endpoint: {{properties: {{network_name: PUBLIC, ports: {{{ports}}}}}}}
                    scalable: {{properties: {{count: 2}}}}
                    os: {{properties: {{image: "{IMAGE}"}}}}
            """))
        return str(t)
    deploy.up(write("web: {protocol: tcp, source: 8080}, ui: {protocol: tcp, source: 8888}"), name="ost",
              pairs=None, inputs_file=None, provider_name=None, parallelism=4, listener=quiet)
    assert read.status("ost")["provider"] == "recas" and len(cloud.servers) == 2 and len(cloud.fips) == 2
    (sg,) = cloud.sgs.values()
    opened = {r[1] for r in cloud.ingress(sg.name)}
    assert opened == {22, 8080, 8888, None}
    # the template changes its ports: the next up opens and closes what changed
    deploy.up(write("ui: {protocol: tcp, source: 8888}, api: {protocol: udp, source: 9000}"), name="ost",
              pairs=None, inputs_file=None, provider_name=None, parallelism=4, listener=quiet)
    assert {(r[0], r[1]) for r in cloud.ingress(sg.name)} == {("tcp", 22), ("tcp", 8888), ("udp", 9000),
                                                              (None, None)}
    deploy.destroy("ost", parallelism=4, listener=quiet)
    assert cloud.servers == {} and cloud.fips == {} and cloud.sgs == {} and cloud.keypairs == {}
