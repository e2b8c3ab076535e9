"""Small templates the tests write: the simulated provider's scalable boxes and a
custom software type whose `start` is the given playbook tasks."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_playbook_template(tmp_path: Path, tasks: str, name: str = "t.yaml") -> str:
    """A template with one custom software type whose `start` is the given tasks."""
    pb = tmp_path / "start.yml"
    head = '- hosts: "{{ dodas_target }}"\n  gather_facts: false\n  tasks:\n'
    pb.write_text(head + textwrap.indent(textwrap.dedent(tasks).strip("\n"), "    ") + "\n")
    t = tmp_path / name
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.App:
            derived_from: tosca.nodes.SoftwareComponent
            interfaces:
              Standard:
                start: {{implementation: {pb}}}
                stop: {{implementation: playbooks/service_stop.yml}}
                delete: {{implementation: playbooks/service_delete.yml}}
        topology_template:
          node_templates:
            box: {{type: tosca.nodes.indigo.Compute}}
            app:
              type: my.nodes.App
              requirements: [{{host: box}}]
        """))
    return str(t)


def front_and_boxes(n: int) -> str:
    """A fixed machine with a web server on it, and `n` (input `n`) scalable boxes
    each with an application that depends on the web server: the shape the plan's
    pure tests compare (diff, waves, chosen removal)."""
    return textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          inputs:
            n: {{type: integer, default: {n}}}
          node_templates:
            front:
              type: tosca.nodes.indigo.Compute
              capabilities:
                host: {{properties: {{num_cpus: 1, mem_size: 256 MB}}}}
            web:
              type: tosca.nodes.WebServer
              requirements: [{{host: front}}]
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {{get_input: n}}}}}}
                host: {{properties: {{num_cpus: 1, mem_size: 256 MB}}}}
            app:
              type: tosca.nodes.SoftwareComponent
              requirements: [{{host: box}}, {{dependency: web}}]
        """)
