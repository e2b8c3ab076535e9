"""`dodas validate` checks the template, not a deployment: required inputs with no
value stand for any value of their type (as `terraform validate` does); values that
are given are still checked; `plan` and `up` still require every input."""

from __future__ import annotations

import json
import textwrap

from support.paths import TEMPLATES

TYPED = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    topology_template:
      inputs:
        workers: {type: integer, constraints: [{greater_or_equal: 3}]}
        flavour: {type: string, constraints: [{valid_values: [small, large]}]}
        mem: {type: scalar-unit.size}
        image: {type: string, constraints: [{min_length: 40}]}
        public: {type: boolean}
        users: {type: list, entry_schema: {type: string}}
      node_templates:
        wn:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: {get_input: workers}}}
            host: {properties: {mem_size: {get_input: mem}, instance_type: {get_input: flavour}}}
            os: {properties: {image: {get_input: image}}}
        app:
          type: tosca.nodes.SoftwareComponent
          requirements: [{host: wn}]
      outputs:
        addresses: {value: {get_attribute: [wn, %s]}}
    """)


def test_a_template_needing_inputs_validates_without_them(cli):
    r = cli("validate", str(TEMPLATES / "spark-k8s.yaml"))
    assert r.code == 0, r.err
    assert "valid" in r.out and "server_image" in r.out and "plan and up need them" in r.out


def test_unknowns_stand_for_values_of_their_type_and_constraints(cli, tmp_path):
    t = tmp_path / "typed.yaml"
    t.write_text(TYPED % "private_address")
    r = cli("validate", str(t), "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["unknown_inputs"] == ["flavour", "image", "mem", "public", "users", "workers"]
    assert data["instances"] == 6, "the count stands for a value its constraint allows (3 machines, 3 apps)"


def test_what_depends_on_an_unknown_is_still_checked(cli, tmp_path):
    t = tmp_path / "typed.yaml"
    t.write_text(TYPED % "privat_address")
    r = cli("validate", str(t))
    assert r.code == 1
    assert "privat_address" in r.err and f"{t}:" in r.err


def test_given_inputs_are_still_checked(cli, tmp_path):
    t = tmp_path / "typed.yaml"
    t.write_text(TYPED % "private_address")
    r = cli("validate", str(t), "-i", "workers=2")
    assert r.code == 1 and 'input "workers" violates constraint greater_or_equal: 3' in r.err
    r = cli("validate", str(t), "-i", "flavour=huge")
    assert r.code == 1 and "valid_values" in r.err


def test_plan_still_requires_every_input(cli):
    r = cli("plan", str(TEMPLATES / "spark-k8s.yaml"))
    assert r.code == 1 and 'missing required input "server_image"' in r.err
