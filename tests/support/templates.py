"""Small templates the tests write: the simulated provider's scalable boxes, a
custom software type whose `start` is the given playbook tasks, and the seed
with INDIGO's ElasticCluster over its Kubernetes front end."""

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


def kubernetes_indigo() -> str:
    """The seed (Spark on Kubernetes by Helm) with INDIGO's ElasticCluster: the bounds
    on the worker node's `wn` capability, as INDIGO's templates write them."""
    from support.paths import SEED

    text = SEED.read_text()
    text = text.replace("""      requirements:
        - host: k8s_slave_server
""", """      capabilities:
        wn:
          properties: {min_instances: 1, max_instances: 5}
      requirements:
        - host: k8s_slave_server
""", 1)
    return text.replace("  outputs:", """    elastic_cluster:
      type: tosca.nodes.indigo.ElasticCluster
      properties:
        deallocate_time: 900
        orchestrator_url: https://orchestrator.example.org
      requirements:
        - lrms: k8s_master
        - wn: k8s_wn
  outputs:""", 1)
