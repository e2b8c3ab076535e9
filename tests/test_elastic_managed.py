"""INDIGO's elastic clusters as written (issue 26, item 6): an elastic policy, or an
ElasticCluster, over a node whose count the template fixes (0, as INDIGO's elastic
templates start, or 1) validates and deploys; the autoscaler then manages that
count as the deployment's own value: kept in the state, shown by `plan` and
`status`, and kept by a later `up` of the same template.

The deployments run on the simulated provider (machines only, no software); the
decisions are the real `decide` over a Spark workload read by the real reader
from a recording (tests/data/elastic, as test_elastic_decide reads it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

DATA = Path(__file__).parent / "data" / "elastic"

#: dodas's policy over a compute whose count is a constant
POLICY = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    workers:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host:
          properties: {{num_cpus: 1, mem_size: 1 GB}}
        scalable:
          properties: {{count: {count}}}
  policies:
    - elastic_workers:
        type: tosca.policies.dodas.Elastic
        targets: [workers]
        properties: {{min_instances: 0, max_instances: 3, max_booting: 3, workload: spark, cooldown: 0}}
"""

#: INDIGO's form: an ElasticCluster naming Spark workers on that compute, bounds on the compute
INDIGO = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    master_host:
      type: tosca.nodes.indigo.Compute
    wn_hosts:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable:
          properties: {{count: {count}, min_instances: 0, max_instances: 4}}
    spark_master:
      type: tosca.nodes.dodas.Spark.Master
      requirements:
        - host: master_host
    spark_worker:
      type: tosca.nodes.dodas.Spark.Worker
      requirements:
        - host: wn_hosts
        - master: spark_master
    elastic:
      type: tosca.nodes.indigo.ElasticCluster
      properties: {{deallocate_time: 120}}
      requirements:
        - wn: spark_worker
"""


def write(tmp_path: Path, text: str, name: str = "elastic.yaml") -> Path:
    t = tmp_path / name
    t.write_text(text)
    return t


@pytest.fixture
def simulated(dodas_home):
    f = dodas_home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("providers:\n  - {name: sim, type: simulated, rank: 1, create_latency: 0}\n")
    return "sim"


@pytest.mark.parametrize("form", ["policy", "ElasticCluster"])
@pytest.mark.parametrize("count", [0, 1])
def test_a_fixed_count_under_an_elastic_policy_validates_and_plans_as_managed(cli, tmp_path, simulated, form,
                                                                             count):
    t = write(tmp_path, (POLICY if form == "policy" else INDIGO).format(count=count))
    r = cli("validate", str(t), "--strict")
    assert r.code == 0, r.err
    r = cli("plan", str(t), "--json", "--no-refresh")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    node = "workers" if form == "policy" else "wn_hosts"
    (pol,) = plan["policies"]
    assert (pol["node"], pol["count_input"], pol["count_managed"], pol["count"]) == (
        node, f"autoscaler:count:{node}", True, count)
    assert plan["inputs"] == {f"autoscaler:count:{node}": count}, "kept with the deployment's inputs"
    r = cli("plan", str(t), "--no-refresh")
    assert f"{node}: {count} instance" in r.out and "managed by the autoscaler" in r.out, r.out
    assert "Inputs:" not in r.out, "the managed count is no input of the template"


def test_a_count_fixed_without_a_policy_is_not_managed(cli, tmp_path, simulated):
    t = write(tmp_path, POLICY.format(count=2).split("  policies:")[0])
    plan = json.loads(cli("plan", str(t), "--json", "--no-refresh").out)
    assert plan["policies"] == [] and plan["inputs"] == {}
    assert [n["instances"] for n in plan["nodes"]] == [2]


def spark_workload():
    """Two applications' cores waiting, as a real master reported them (recorded)."""
    from dodas.elastic.readers.spark import SparkReader

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/json/":
            return httpx.Response(200, json=json.loads((DATA / "spark_master_waiting.json").read_text()))
        if request.url.path == "/app/":
            return httpx.Response(200, text=(DATA / "spark_app_waiting.html").read_text())
        return httpx.Response(404)

    reader = SparkReader("http://127.77.200.1:18080", transport=httpx.MockTransport(handler))
    return asyncio.run(reader.read())


@pytest.mark.parametrize("count", [0, 1])
def test_the_autoscaler_manages_the_count_and_a_later_up_keeps_it(cli, tmp_path, simulated, count):
    from dodas.cli.progress import factory
    from dodas.elastic.decide import Memory, decide
    from dodas.elastic.policy import policies
    from dodas.services import autoscale, deploy, read
    from dodas.services.recorded import stored_plan
    from dodas.state.store import Store

    t = str(write(tmp_path, POLICY.format(count=count)))
    quiet = factory(quiet=True)
    deploy.up(t, name="el", pairs=None, inputs_file=None, provider_name="sim", parallelism=2, listener=quiet)
    st = read.status("el")
    assert st["status"] == "CREATE_COMPLETE"
    assert st["managed_counts"] == {"workers": count}, "the state holds the count from the first up"
    assert len([i for i in st["instances"] if i["node"] == "workers"]) == count

    # the real decision over a recorded workload with work waiting, carried out as the loop does
    dep = Store().require("el")
    (policy,) = policies(stored_plan(dep))
    assert policy.count_managed
    target = autoscale.Target("el", dep.id, policy, {}, 1,
                              autoscale._instances(policy.node, Store().instances(dep.id)))
    decision = decide(policy, spark_workload(), target.instances, Memory(), 1000.0, cores_per_worker=1)
    assert decision.action == "add" and decision.count > count, decision
    autoscale.carry_out(target, decision, None, None, trusted=False)
    grown = decision.count
    st = read.status("el")
    assert st["managed_counts"] == {"workers": grown}
    assert len([i for i in st["instances"] if i["node"] == "workers"]) == grown
    r = cli("status", "el")
    assert f"workers: {grown} instance" in r.out and "managed by the autoscaler" in r.out, r.out

    # the same template again: the autoscaler's count stays, nothing to do
    r = cli("plan", t, "--name", "el", "--json", "--no-refresh")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert plan["policies"][0]["count"] == grown and plan["summary"]["delete"] == 0
    assert plan["has_changes"] is False, plan["changes"]
    deploy.up(t, name="el", pairs=None, inputs_file=None, provider_name=None, parallelism=2, listener=quiet)
    st = read.status("el")
    assert st["managed_counts"] == {"workers": grown}
    assert len([i for i in st["instances"] if i["node"] == "workers"]) == grown, "not reset to the template's"

    # the autoscaler removes the worker it chose, by name, not the last one: the others keep their indexes
    from dodas.elastic.decide import Decision
    from dodas.elastic.workload import Workload

    target = autoscale.Target(
        "el", dep.id, policy, {}, 1, autoscale._instances(policy.node, Store().instances(dep.id)), grown)
    autoscale.carry_out(target, Decision("remove", grown - 1, ("workers[0]",), "chosen"), None, Workload(0, (), ()),
                        trusted=False)
    st = read.status("el")
    left = sorted(i["id"] for i in st["instances"] if i["node"] == "workers")
    assert left == [f"workers[{i}]" for i in range(1, grown)]
    assert st["managed_counts"] == {"workers": grown - 1}
    r = cli("plan", t, "--name", "el", "--json", "--no-refresh")
    assert json.loads(r.out)["has_changes"] is False, "a later up keeps the indexes left"

    # `dodas scale` sets the managed count as the autoscaler does (no template input to change)
    r = cli("scale", "el", "workers", "1", "--yes", "--quiet")
    assert r.code == 0, r.err
    st = read.status("el")
    assert st["managed_counts"] == {"workers": 1}
    assert len([i for i in st["instances"] if i["node"] == "workers" and i["state"] != "deleted"]) == 1
