"""Elasticity policies (issue 15, item 1): dodas's `tosca.policies.dodas.Elastic`
and INDIGO's `tosca.nodes.indigo.ElasticCluster` give the same Policy, carried by
the plan, shown by `plan`, and every bad bound is a located error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.located import one_error
from support.paths import ROOT, TEMPLATES
from support.templates import kubernetes_indigo

from dodas.elastic.policy import Policy, check_quota, policies


SPARK = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    number_of_workers: {type: integer, default: 1}
    idle: {type: integer, default: 60}
  node_templates:
    master_host:
      type: tosca.nodes.indigo.Compute
    worker_hosts:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable:
          properties: {count: {get_input: number_of_workers}}
    spark_master:
      type: tosca.nodes.dodas.Spark.Master
      requirements:
        - host: master_host
    spark_worker:
      type: tosca.nodes.dodas.Spark.Worker
      requirements:
        - host: worker_hosts
        - master: spark_master
  policies:
    - elastic_workers:
        type: tosca.policies.dodas.Elastic
        targets: [worker_hosts]
        properties:
          min_instances: 1
          max_instances: 4
          idle_time: {get_input: idle}
          max_booting: 2
          cooldown: 10
          workload: spark
"""

#: INDIGO's form for a Spark cluster: the ElasticCluster names its workers (no lrms)
SPARK_INDIGO = SPARK.split("  policies:")[0].replace(
    "properties: {count: {get_input: number_of_workers}}",
    "properties: {count: {get_input: number_of_workers}, min_instances: 1, max_instances: 3}") + """\
    elastic:
      type: tosca.nodes.indigo.ElasticCluster
      properties:
        deallocate_time: 120
        iam_access_token: ignored
      requirements:
        - wn: spark_worker
"""


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """The line where the `nth` `needle` starts (a needle may span lines)."""
    text = path.read_text()
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def model_of(path: Path):
    from dodas import services
    return services.validate(str(path), offline=True).model


# -- both forms ------------------------------------------------------------------
def test_dodas_policy_parses(tmp_path):
    t = write(tmp_path, SPARK)
    model = model_of(t)
    assert policies(model) == [Policy(
        node="worker_hosts", count_input="number_of_workers", min_instances=1, max_instances=4, idle_time=60.0,
        max_booting=2, cooldown=10.0, workload="spark", poll_interval=5.0, boot_timeout=600.0,
        source="policy elastic_workers")]
    assert policies(model)[0].max_location == (str(t), line_of(t, "max_instances: 4"), 26)


def test_policy_defaults_are_cluess(tmp_path):
    t = write(tmp_path, swap(SPARK, """          idle_time: {get_input: idle}
          max_booting: 2
          cooldown: 10
""", ""))
    (p,) = policies(model_of(t))
    assert (p.idle_time, p.max_booting, p.cooldown, p.poll_interval, p.boot_timeout) == (1800.0, 1, 60.0, 5.0, 600.0)


def test_indigo_form_for_spark(tmp_path):
    model = model_of(write(tmp_path, SPARK_INDIGO))
    assert policies(model) == [Policy(
        node="worker_hosts", count_input="number_of_workers", min_instances=1, max_instances=3, idle_time=120.0,
        max_booting=1, cooldown=60.0, workload="spark", poll_interval=5.0, boot_timeout=600.0,
        source="node elastic (tosca.nodes.indigo.ElasticCluster)")]
    from dodas.model.support import known_only_nodes
    assert known_only_nodes(model) == {}, "an ElasticCluster that became a policy is deployable"


def test_indigo_form_for_kubernetes(tmp_path):
    model = model_of(write(tmp_path, kubernetes_indigo()))
    (p,) = policies(model)
    assert (p.node, p.count_input, p.min_instances, p.max_instances, p.idle_time, p.workload) == (
        "k8s_slave_server", "number_of_slaves", 1, 5, 900.0, "kubernetes")
    assert p.source == "node elastic_cluster (tosca.nodes.indigo.ElasticCluster)"


def test_an_elastic_cluster_over_slurm_stays_known_only(tmp_path):
    from support.type_families import SLURM_ELASTIC

    from dodas.model.support import known_only_nodes
    model = model_of(write(tmp_path, SLURM_ELASTIC))
    assert policies(model) == []
    assert "Spark, Kubernetes and HTCondor" in known_only_nodes(model)["elastic_cluster_front_end"]


def test_json_round_trip(tmp_path):
    (p,) = policies(model_of(write(tmp_path, SPARK)))
    assert Policy.from_json(json.loads(json.dumps(p.to_json()))) == p


def test_check_quota(tmp_path):
    t = write(tmp_path, SPARK)
    (p,) = policies(model_of(t))
    assert check_quota(p, 10) is None
    assert check_quota(p, 4, fixed_machines=1) is not None
    d = check_quota(p, 3)
    assert (d.file, d.line) == (str(t), line_of(t, "max_instances: 4"))
    assert "max_instances 4" in d.message and "quota of 3 machines" in d.message


def test_the_catalogue_has_an_elastic_spark_template():
    (p,) = policies(model_of(TEMPLATES / "spark-jupyter-elastic.yaml"))
    assert (p.node, p.count_input, p.min_instances, p.workload) == ("worker_hosts", "number_of_workers", 1, "spark")


ERRORS = [
    # (name, old, new, the line's text, what the message says)
    ("min over max", "min_instances: 1", "min_instances: 5", "min_instances: 5",
     'policy "elastic_workers": min_instances 5 is more than max_instances 4'),
    ("negative min", "min_instances: 1", "min_instances: -1", "min_instances: -1",
     'policy "elastic_workers" property "min_instances"'),
    ("max zero", "max_instances: 4", "max_instances: 0", "max_instances: 0",
     'property "max_instances": The value "0" of property "max_instances" must be greater than or equal to "1"'),
    ("unknown workload", "workload: spark", "workload: slurm", "workload: slurm",
     'The value "slurm" of property "workload" is not valid'),
    ("missing max", "          max_instances: 4\n", "", "        properties:\n          min",
     'policy "elastic_workers" is missing required property "max_instances"'),
    ("unknown property", "cooldown: 10", "cooldown: 10\n          cool_down: 10", "cool_down",
     'policy "elastic_workers": unknown property "cool_down"'),
    ("not a compute", "targets: [worker_hosts]", "targets: [spark_worker]", "targets:",
     'target "spark_worker" is a tosca.nodes.dodas.Spark.Worker, not a Compute node'),
    ("no such target", "targets: [worker_hosts]", "targets: [workers]", "targets:",
     'policy "elastic_workers": target "workers" is not a node of the template'),
    ("two targets", "targets: [worker_hosts]", "targets: [worker_hosts, master_host]", "targets:",
     "an elastic policy targets one node"),
    ("over the operator's limit", "max_instances: 4", "max_instances: 5000", "max_instances: 5000",
     "max_instances 5000 is more than the limit of 1000 instances per node"),
    ("a bad input value", "idle: {type: integer, default: 60}", "idle: {type: string, default: soon}",
     "idle_time:", "idle_time must be a number of seconds, 0 or more, got 'soon'"),
]


@pytest.mark.parametrize("name,old,new,needle,says", ERRORS, ids=[e[0] for e in ERRORS])
def test_located_errors(cli, tmp_path, name, old, new, needle, says):
    t = write(tmp_path, swap(SPARK, old, new))
    line, _col, msg = one_error(cli("validate", str(t)), t)
    assert says in msg, msg
    assert line == line_of(t, needle), (msg, line)


def test_two_policies_on_one_node(cli, tmp_path):
    t = write(tmp_path, SPARK + """\
    - again:
        type: tosca.policies.dodas.Elastic
        targets: [worker_hosts]
        properties: {max_instances: 2, workload: spark}
""")
    line, _col, msg = one_error(cli("validate", str(t)), t)
    assert line == line_of(t, "targets: [worker_hosts]", nth=2)
    assert msg == (f'policy "again": node "worker_hosts" already has an elastic policy (policy elastic_workers, '
                   f'line {line_of(t, "targets: [worker_hosts]")}); a node has one')


def test_indigo_errors(cli, tmp_path):
    t = write(tmp_path, swap(SPARK_INDIGO, ", min_instances: 1, max_instances: 3}", "}"))
    line, _col, msg = one_error(cli("validate", str(t)), t)
    assert line == line_of(t, "elastic:") and "no maximum number of workers" in msg
    t = write(tmp_path, swap(kubernetes_indigo(), "{min_instances: 1, max_instances: 5}",
                             "{min_instances: 6, max_instances: 5}"))
    line, _col, msg = one_error(cli("validate", str(t)), t)
    assert line == line_of(t, "min_instances: 6")
    assert msg == 'node "elastic_cluster": min_instances 6 is more than max_instances 5'


def test_a_count_outside_the_bounds_is_a_warning(cli, tmp_path):
    t = write(tmp_path, swap(SPARK, "number_of_workers: {type: integer, default: 1}",
                             "number_of_workers: {type: integer, default: 6}"))
    r = cli("validate", str(t))
    assert r.code == 0, r.err
    assert f"{t}:{line_of(t, 'count: {get_input')}:" in r.err
    assert "starts with 6 instances, outside its elastic bounds 1..4" in r.err
    assert cli("validate", str(t), "--strict").code == 1


def test_the_real_command_locates_errors(tmp_path):
    """The console entry point, as a user runs it."""
    t = write(tmp_path, swap(SPARK, "min_instances: 1", "min_instances: 5"))
    r = subprocess.run([sys.executable, "-m", "dodas", "validate", str(t)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip() == (f'{t}:{line_of(t, "min_instances: 5")}:26: policy "elastic_workers": '
                                "min_instances 5 is more than max_instances 4")


# -- plan ---------------------------------------------------------------------------
def test_plan_json_carries_the_policies(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DODAS_HOME", str(tmp_path / "home"))
    t = write(tmp_path, SPARK)
    r = cli("plan", str(t), "--json", "--no-refresh")
    assert r.code == 0, r.err
    got = json.loads(r.out)["policies"]
    assert got == [{"node": "worker_hosts", "count_input": "number_of_workers", "min_instances": 1,
                    "max_instances": 4, "idle_time": 60.0, "max_booting": 2, "cooldown": 10.0, "workload": "spark",
                    "poll_interval": 5.0, "boot_timeout": 600.0, "source": "policy elastic_workers",
                    "count_managed": False, "count": 1}]


def test_plan_shows_the_policy(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DODAS_HOME", str(tmp_path / "home"))
    r = cli("plan", str(write(tmp_path, SPARK)), "--no-refresh")
    assert r.code == 0, r.err
    assert "elastic: worker_hosts 1..4, idle 60 s, watching spark (policy elastic_workers)" in r.out
    r = cli("plan", str(write(tmp_path, SPARK_INDIGO, "i.yaml")), "--no-refresh")
    assert r.code == 0, r.err
    assert ("elastic: worker_hosts 1..3, idle 120 s, watching spark "
            "(node elastic (tosca.nodes.indigo.ElasticCluster))") in r.out
