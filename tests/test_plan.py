"""The seed template and the catalogue plan offline, with the structure the issue asks for."""

from __future__ import annotations

import json

from support.paths import SEED, SPARK

from dodas import services


def test_seed_validates_offline(cli):
    r = cli("validate", str(SEED), "--offline")
    assert r.code == 0, r.err
    assert "valid" in r.out


def test_seed_plan_with_three_slaves(cli, tmp_path):
    # the course's fixed admin token, which the catalogue's copy leaves out
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED.read_text().replace("        kube_version: 1.14.0\n        kube_front_end_ip",
                                             "        admin_token: testme\n        kube_version: 1.14.0\n"
                                             "        kube_front_end_ip", 1))
    r = cli("plan", str(seed), "-i", "number_of_slaves=3", "--offline", "--json")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    by_node: dict[str, list[dict]] = {}
    for inst in plan["instances"]:
        by_node.setdefault(inst["node"], []).append(inst)
    assert len(by_node["k8s_master_server"]) == 1
    assert len(by_node["k8s_slave_server"]) == 3
    assert [i["host"] for i in by_node["k8s_master"]] == ["k8s_master_server[0]"]
    assert sorted(i["host"] for i in by_node["k8s_wn"]) == [f"k8s_slave_server[{k}]" for k in range(3)]
    (helm,) = by_node["helm_spark"]
    assert helm["host"] == "k8s_master[0]"
    others = [i for i in plan["instances"] if i["node"] != "helm_spark"]
    assert all(helm["wave"] > i["wave"] for i in others), "the Helm release comes after everything else"
    # workers join after the front end is initialised
    assert all(w["wave"] > by_node["k8s_master"][0]["wave"] for w in by_node["k8s_wn"])
    master = by_node["k8s_master_server"][0]["compute"]
    assert master["num_cpus"] == 2 and master["network"] == "PUBLIC"
    assert master["image"].startswith("ost://openstack.example.org/")
    assert {p["source"] for p in master["ports"]} == {6443, 30443, 30808, 30888}
    assert by_node["k8s_slave_server"][0]["compute"]["network"] == "PRIVATE"
    # what stays deferred: addresses, and the outputs built on them
    where = {(d["instance"], d["where"]) for d in plan["deferred"]}
    assert ("helm_spark[0]", "properties.externalIP") in where
    assert (None, "outputs.jupyter_endpoint") in where
    assert plan["outputs"]["jupyter_endpoint"]["deferred"] is True
    assert plan["outputs"]["jupyter_endpoint"]["value"] == {
        "concat": ["http://", {"get_attribute": ["k8s_master_server", "public_address", 0]}, ":30888"]}
    # a fixed admin token in the template is never echoed back
    k8s_master = by_node["k8s_master"][0]
    assert k8s_master["properties"]["admin_token"] == "********"
    assert "testme" not in r.out
    assert any("admin_token is a well-known placeholder" in w for w in plan["warnings"]), "and it is warned about"
    assert r.err == "", "under --json, warnings are in the JSON"
    assert "placeholder" not in cli("plan", str(SEED), "--offline").err, "none given: one is generated"


def test_plan_json_is_stable_and_documented():
    p = services.plan(str(SPARK))
    data = p.to_json()
    assert list(data) == ["format_version", "template", "template_sha256", "tosca_definitions_version",
                          "inputs", "nodes", "instances", "waves", "bastion", "deferred", "outputs", "policies"]
    assert data["format_version"] == 1
    assert data["bastion"] == "master_host[0]", "workers are private: reached through the public master"
    inst = data["instances"][0]
    assert list(inst) == ["id", "node", "index", "type", "kind", "host", "wave", "depends_on", "compute",
                          "properties"]
    assert json.dumps(data) == json.dumps(services.plan(str(SPARK)).to_json()), "same input, same output"


def test_spark_template_plan():
    p = services.plan(str(SPARK), ["number_of_workers=4", "worker_cpus=2"])
    ids = {i.id for i in p.instances}
    assert {f"spark_worker[{k}]" for k in range(4)} <= ids
    assert p.waves[0] and all(p.instances[i].node.is_compute for i in p.waves[0])
    worker_host = p.model.nodes["worker_hosts"].compute
    assert worker_host.num_cpus == 2 and worker_host.mem_mib == 1024
    jupyter = p.instances[next(i for i in p.instances if i.node == "jupyter")]
    assert jupyter.host.id == "master_host[0]"
    assert p.model.outputs["jupyter_token"].sensitive
    ops = p.model.nodes["spark_master"].operations
    assert ops["start"].implementation.endswith("playbooks/spark/master_start.yml")
    from dodas.model.values import AttrRef
    assert ops["start"].inputs == {"spark_port": 7077, "spark_webui_port": 8080,
                                   "spark_secret": AttrRef("spark_master", "secret", (), scope="self")}
    # the cluster's secret is generated before the walk: reading it does not make JupyterLab wait
    assert p.model.outputs["spark_secret"].sensitive
    master = next(i for i in p.instances if i.node == "spark_master")
    assert p.instances[master].wave == jupyter.wave and master not in jupyter.depends_on


def test_inputs_file_and_cli_override(tmp_path):
    f = tmp_path / "inputs.yaml"
    f.write_text("number_of_workers: 3\nworker_mem: 512 MiB\n")
    p = services.plan(str(SPARK), ["number_of_workers=1"], str(f))
    assert p.model.inputs["number_of_workers"] == 1  # -i wins over the file
    assert p.model.nodes["worker_hosts"].compute.mem_mib == 512


def test_functions_resolved_at_plan_time(tmp_path):
    t = tmp_path / "fn.yaml"
    t.write_text("""tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    name: {type: string, default: "a-b-c"}
  node_templates:
    h:
      type: tosca.nodes.Compute
    master:
      type: tosca.nodes.dodas.Spark.Master
      properties:
        port: 7000
      requirements: [{host: h}]
    jupyter:
      type: tosca.nodes.dodas.JupyterLab
      properties:
        port: { get_property: [master, port] }
      requirements: [{host: h}, {spark: master}]
  outputs:
    joined: { value: { join: [[ {get_input: name}, "x" ], "/"] } }
    tok: { value: { token: [ {get_input: name}, "-", 1 ] } }
    cat: { value: { concat: [ "p=", { get_property: [jupyter, port] } ] } }
    addr: { value: { join: [[ {get_attribute: [h, private_address]}, ":", "1" ]] } }
""")
    p = services.plan(str(t))
    outs = {k: v.value for k, v in p.model.outputs.items()}
    assert outs["joined"] == "a-b-c/x"
    assert outs["tok"] == "b"
    assert outs["cat"] == "p=7000"
    assert p.model.nodes["jupyter"].properties["port"] == 7000
    assert p.to_json()["outputs"]["addr"]["deferred"] is True


def test_waves_parallel_and_ordered():
    p = services.plan(str(SEED), ["number_of_slaves=5"])
    seen: set = set()
    for wave in p.waves:
        for inst in wave:
            assert all(d in seen for d in p.instances[inst].depends_on)
        seen.update(wave)
    assert len(p.waves[0]) == 6  # all six servers can be made at once


def _boxes(tmp_path, front: str, back: str) -> str:
    t = tmp_path / "net.yaml"
    t.write_text(f"""\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    back:
      type: tosca.nodes.indigo.Compute
      capabilities:
        endpoint: {{properties: {{network_name: {back}}}}}
        scalable: {{properties: {{count: 2}}}}
    front:
      type: tosca.nodes.indigo.Compute
      capabilities:
        endpoint: {{properties: {{network_name: {front}}}}}
    app:
      type: tosca.nodes.SoftwareComponent
      requirements: [{{host: back}}]
""")
    return str(t)


def test_software_on_private_machines_waits_for_the_bastion(tmp_path):
    """The bastion is the first public machine (in template order); what is
    configured on a private machine waits for it to exist, the machines do not."""
    p = services.plan(_boxes(tmp_path, "PUBLIC", "PRIVATE"))
    assert p.bastion is not None and p.bastion.id == "front[0]"
    deps = {i.id: sorted(d.id for d in pi.depends_on) for i, pi in p.instances.items()}
    assert deps["app[0]"] == ["back[0]", "front[0]"] and deps["app[1]"] == ["back[1]", "front[0]"]
    assert deps["back[0]"] == [] and deps["front[0]"] == [], "machines are created side by side"


def test_no_bastion_when_every_machine_is_on_one_kind_of_network(tmp_path):
    for front, back in (("PUBLIC", "PUBLIC"), ("PRIVATE", "PRIVATE")):
        p = services.plan(_boxes(tmp_path, front, back))
        assert p.bastion is None
        assert all(d.node != "front" for pi in p.instances.values() for d in pi.depends_on)
