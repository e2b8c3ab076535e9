"""What a deployment opens to the world: the plan's ingress rules (model/network.py),
the catalogue templates' ports, INDIGO's `remote_cidr`, and the rule set every cloud
provider reconciles (providers/cloud.py). The clouds themselves are tested in
test_ec2_moto.py (moto) and test_openstack.py (the recording stand-in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dodas import services
from dodas.errors import TemplateError
from dodas.model.network import Ingress, cidr, ingress_rules, is_public
from dodas.providers.cloud import ALL, SELF, CloudProvider, Rule
from dodas.providers.config import ProviderConfig
from dodas.providers.ec2 import EC2Provider
from dodas.providers.openstack import OpenStackProvider

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: inputs a catalogue template requires (none of them reach a cloud here)
REQUIRED = {"spark-k8s.yaml": ["server_image=ost://cloud.example.org/0000"]}
#: reaching them runs code on the cluster: Spark's master and its REST submission port
NEVER_PUBLIC = {7077, 6066}


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.yaml")))
def test_no_catalogue_template_opens_the_spark_master_to_the_world(name):
    rules = ingress_rules(services.plan(str(TEMPLATES / name), REQUIRED.get(name)).model)
    exposed = sorted(r.port for r in rules if is_public(r) and r.port in NEVER_PUBLIC)
    assert exposed == [], f"{name} opens {exposed} to everyone"


def test_spark_jupyter_opens_only_jupyter_and_the_ui():
    rules = ingress_rules(services.plan(str(TEMPLATES / "spark-jupyter.yaml")).model)
    assert rules == (Ingress("tcp", 8080), Ingress("tcp", 8888))


# -- remote_cidr (INDIGO's PortSpec) -------------------------------------------------------
# declared by the type library (tosca.datatypes.indigo.network.PortSpec), as INDIGO's templates use it
INDIGO_PORTS = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    vm:
      type: tosca.nodes.indigo.Compute
      capabilities:
        endpoint:
          properties:
            network_name: PUBLIC
            ports:
              ui: {protocol: tcp, source: 8080}
              db: {protocol: tcp, source: 5432, remote_cidr: "%s"}
"""


def test_a_port_narrowed_by_remote_cidr(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text(INDIGO_PORTS % "10.1.2.3/16")
    model = services.plan(str(t)).model
    assert ingress_rules(model) == (Ingress("tcp", 5432, "10.1.0.0/16"), Ingress("tcp", 8080, "0.0.0.0/0"))
    (db,) = [p for p in model.nodes["vm"].compute.ports if p.name == "db"]
    assert db.to_json()["remote_cidr"] == "10.1.0.0/16"


def test_a_remote_cidr_that_is_no_network_is_a_located_error(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text(INDIGO_PORTS % "everyone")
    with pytest.raises(TemplateError) as err:
        services.plan(str(t))
    text = str(err.value)
    assert 'port "db": remote_cidr must be an address range' in text and f"{t}:" in text


def test_cidr_and_is_public():
    assert cidr("10.1.2.3/8") == "10.0.0.0/8" and cidr("192.0.2.7") == "192.0.2.7/32"
    assert cidr("2001:db8::1/32") == "2001:db8::/32" and cidr("nowhere") is None and cidr(None) is None
    assert is_public(Ingress("tcp", 1)) and is_public(Ingress("tcp", 1, "::/0"))
    assert not is_public(Ingress("tcp", 1, "10.0.0.0/8"))


# -- the rule set of every cloud ---------------------------------------------------------------
def test_the_rules_are_ssh_the_group_itself_and_exactly_the_ingress():
    p = OpenStackProvider(ProviderConfig("c", "openstack", 1, [], [],
                                         {"ssh_from": ["192.0.2.0/24", "198.51.100.7/32"]}), connect=None)
    desired = p.desired_rules((Ingress("tcp", 8888), Ingress("udp", 9000, "10.0.0.0/8")))
    assert desired == {Rule("tcp", 22, 22, "192.0.2.0/24"), Rule("tcp", 22, 22, "198.51.100.7/32"),
                       Rule(ALL, None, None, SELF), Rule("tcp", 8888, 8888, "0.0.0.0/0"),
                       Rule("udp", 9000, 9000, "10.0.0.0/8")}
    existing = {Rule("tcp", 22, 22, "192.0.2.0/24"): "h1", Rule("tcp", 8080, 8080, "0.0.0.0/0"): "h2",
                Rule(ALL, None, None, SELF): "h3", Rule(ALL, None, None, "sg:other"): "h4"}
    add, extra = CloudProvider.rule_diff(desired, existing)
    assert add == sorted([Rule("tcp", 22, 22, "198.51.100.7/32"), Rule("tcp", 8888, 8888, "0.0.0.0/0"),
                          Rule("udp", 9000, 9000, "10.0.0.0/8")])
    assert extra == {Rule("tcp", 8080, 8080, "0.0.0.0/0"): "h2", Rule(ALL, None, None, "sg:other"): "h4"}
    assert CloudProvider.rule_diff(desired, dict.fromkeys(desired)) == ([], {})


def test_ssh_from_a_single_cidr():
    p = EC2Provider(ProviderConfig("c", "ec2", 1, [], [], {"ssh_from": "203.0.113.0/24"}))
    assert p.desired_rules(()) == {Rule("tcp", 22, 22, "203.0.113.0/24"), Rule(ALL, None, None, SELF)}
