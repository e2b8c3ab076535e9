"""Deployable or only known: the library declares INDIGO and DODAS types so that
their templates validate as written; `plan` and `up` refuse a node of a type dodas
has no playbooks for, naming it and what dodas offers instead."""

from __future__ import annotations

import json
import textwrap

from support.paths import SPARK

MESOS = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    imports:
      - indigo_custom_types: https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml
    node_types:
      my.Marker:
        derived_from: tosca.nodes.SoftwareComponent
    topology_template:
      node_templates:
        mesos_master:
          type: tosca.nodes.indigo.LRMS.FrontEnd.Mesos
          requirements:
            - host: master_server
        marker:
          type: my.Marker
          requirements:
            - host: master_server
        master_server:
          type: tosca.nodes.indigo.Compute
    """)


def test_validate_accepts_a_known_only_node_and_says_so(cli, tmp_path):
    t = tmp_path / "mesos.yaml"
    t.write_text(MESOS)
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err
    assert 'node "mesos_master" (tosca.nodes.indigo.LRMS.FrontEnd.Mesos) is known but dodas cannot deploy it' in r.out
    assert "Mesos is not supported; Kubernetes types are" in r.out
    assert "marker" not in r.out, "a user's own type with nothing to run is not refused"


def test_plan_and_up_refuse_it_where_its_type_is_written(cli, tmp_path):
    t = tmp_path / "mesos.yaml"
    t.write_text(MESOS)
    for command in ("plan", "up"):
        r = cli(command, str(t), "--offline")
        assert r.code == 1
        line = MESOS.splitlines().index("      type: tosca.nodes.indigo.LRMS.FrontEnd.Mesos") + 1
        assert r.err.startswith(f"{t}:{line}:13: node \"mesos_master\" (tosca.nodes.indigo.LRMS.FrontEnd.Mesos) "
                                "is known to dodas but cannot be deployed by it: Mesos is not supported"), r.err
    assert not (tmp_path / "dodas-home" / "data" / "state.db").exists() or "mesos" not in cli("list").out


def test_every_node_of_a_plan_is_deployable(cli):
    r = cli("plan", str(SPARK), "--json")
    assert r.code == 0, r.err
    assert all(n["deployable"] for n in json.loads(r.out)["nodes"])


def test_types_lists_the_library_with_verdicts(cli):
    r = cli("types", "--json")
    assert r.code == 0, r.err
    by_name = {t["name"]: t for t in json.loads(r.out)}
    assert by_name["tosca.nodes.indigo.Compute"]["deployable"] is True
    assert by_name["tosca.nodes.dodas.Spark.Master"]["deployable"] is True
    mesos = by_name["tosca.nodes.indigo.LRMS.FrontEnd.Mesos"]
    assert mesos["deployable"] is False and mesos["instead"].startswith("Mesos is not supported")
    assert any(t["kind"] == "capability" for t in by_name.values())
    only = {t["name"] for t in json.loads(cli("types", "--deployable", "--json").out)}
    assert "tosca.nodes.indigo.Compute" in only and "tosca.nodes.indigo.LRMS.FrontEnd.Mesos" not in only
    assert "known only: Mesos is not supported" in cli("types").out
