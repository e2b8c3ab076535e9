"""Every kind of bad input gets one clear, located message and exit status 1."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from support.located import LOC
from support.paths import ROOT, SEED


#: the Kubernetes front end's properties in the seed, where tests put an admin_token
MASTER_PROPS = "        kube_version: 1.14.0\n        kube_front_end_ip"


def seed_with(tmp_path: Path, old: str, new: str, name: str = "t.yaml") -> Path:
    text = SEED.read_text()
    assert old in text, old
    out = tmp_path / name
    out.write_text(text.replace(old, new, 1))
    return out


def line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def one_error(r, file: str | None = None) -> tuple[int, int, str]:
    assert r.code == 1, (r.code, r.out, r.err)
    assert "Traceback" not in r.err + r.out
    lines = [ln for ln in r.err.strip().splitlines() if ln]
    assert len(lines) == 1, r.err
    m = LOC.match(lines[0])
    assert m, lines[0]
    if file is not None:
        assert m["file"] == file
    return int(m["line"]), int(m["col"]), m["msg"]


def test_malformed_yaml(cli, tmp_path):
    t = seed_with(tmp_path, "      properties: {network_name: PRIVATE}", "      properties: {network_name: PRIVATE")
    line, _col, msg = one_error(cli("validate", str(t)), str(t))
    assert "invalid YAML" in msg and "flow mapping" in msg
    assert line >= line_of(t, "network_name: PRIVATE")


def test_unknown_type(cli, tmp_path):
    t = seed_with(tmp_path, "type: tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes",
                  "type: tosca.nodes.indigo.LRMS.WorkerNode.Kubernets")
    line, _col, msg = one_error(cli("validate", str(t)), str(t))
    assert line == line_of(t, "Kubernets")
    assert 'unknown type "tosca.nodes.indigo.LRMS.WorkerNode.Kubernets"' in msg
    assert 'did you mean "tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes"' in msg


def test_unknown_property(cli, tmp_path):
    t = seed_with(tmp_path, MASTER_PROPS, "        admin_tokn: testme\n" + MASTER_PROPS)
    line, col, msg = one_error(cli("validate", str(t)), str(t))
    assert (line, col) == (line_of(t, "admin_tokn"), 9)
    assert msg == 'node "k8s_master": unknown property "admin_tokn" for its type'


def test_wrong_input_type(cli):
    line, col, msg = one_error(cli("plan", str(SEED), "-i", "number_of_slaves=three"), "<command line>")
    assert (line, col) == (1, 1)
    assert 'input "number_of_slaves" must be an integer, got "three"' in msg
    assert f"declared at {SEED}:{line_of(SEED, 'number_of_slaves:')}:5" in msg


def test_wrong_input_type_in_inputs_file(cli, tmp_path):
    f = tmp_path / "in.yaml"
    f.write_text("num_cpus_slave: 2\nnumber_of_slaves: [1, 2]\n")
    line, col, msg = one_error(cli("plan", str(SEED), "--inputs", str(f)), str(f))
    assert (line, col) == (2, 19)
    assert "must be an integer" in msg


def test_violated_constraint(cli, tmp_path):
    t = tmp_path / "c.yaml"
    t.write_text("""tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    workers:
      type: integer
      constraints: [{in_range: [1, 8]}]
  node_templates:
    h:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable: {properties: {count: {get_input: workers}}}
""")
    _line, _col, msg = one_error(cli("plan", str(t), "-i", "workers=20"))
    assert 'input "workers" violates constraint in_range: [1, 8] (got 20)' in msg


def test_violated_constraint_in_template_value(cli, tmp_path):
    t = tmp_path / "c.yaml"
    t.write_text("""tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    h: {type: tosca.nodes.Compute}
    m:
      type: tosca.nodes.dodas.Spark.Master
      properties: {port: 70000}
      requirements: [{host: h}]
""")
    line, _col, msg = one_error(cli("validate", str(t)), str(t))
    assert line == 7 and "70000" in msg and 'node "m" property "port"' in msg


def test_requirement_on_missing_node(cli, tmp_path):
    t = seed_with(tmp_path, "        - host: k8s_slave_server", "        - host: k8s_slave_srv")
    line, col, msg = one_error(cli("validate", str(t)), str(t))
    assert (line, col) == (line_of(t, "k8s_slave_srv"), 17)
    assert msg == 'node "k8s_wn" has a requirement on node "k8s_slave_srv", which the template does not define'


def test_dependency_cycle(cli, tmp_path):
    t = seed_with(tmp_path, "        - host: k8s_master_server\n    k8s_wn:",
                  "        - host: k8s_master_server\n        - dependency: helm_spark\n    k8s_wn:")
    line, _col, msg = one_error(cli("plan", str(t)), str(t))
    assert "dependency cycle:" in msg
    assert "helm_spark -> k8s_master -> helm_spark" in msg or "k8s_master -> helm_spark -> k8s_master" in msg
    assert line in (line_of(t, "- dependency: helm_spark"), line_of(t, "- host: k8s_master"))


def test_missing_required_input(cli, tmp_path):
    t = seed_with(tmp_path, "    number_of_slaves: {type: integer, default: 1}",
                  "    number_of_slaves: {type: integer}")
    line, col, msg = one_error(cli("plan", str(t)), str(t))
    assert (line, col) == (line_of(t, "number_of_slaves:"), 5)
    assert 'missing required input "number_of_slaves"' in msg


def test_unknown_input_given(cli):
    _l, _c, msg = one_error(cli("plan", str(SEED), "-i", "number_of_slave=2"))
    assert 'unknown input "number_of_slave"' in msg and 'did you mean "number_of_slaves"' in msg


def test_unreachable_remote_import(cli, tmp_path):
    t = seed_with(tmp_path, "  - indigo_custom_types: https://raw.githubusercontent.com/indigo-dc/tosca-types/"
                            "k8s-course/custom_types.yaml",
                  "  - extra: http://127.0.0.1:9/nothing/types.yaml")
    line, col, msg = one_error(cli("validate", str(t)), str(t))
    assert (line, col) == (line_of(t, "127.0.0.1:9"), 5)
    assert 'cannot fetch remote import "http://127.0.0.1:9/nothing/types.yaml"' in msg


def test_offline_refuses_remote_import(cli, tmp_path):
    t = seed_with(tmp_path, "https://raw.githubusercontent.com/indigo-dc/tosca-types/k8s-course/custom_types.yaml",
                  "http://127.0.0.1:9/other.yaml")
    _l, _c, msg = one_error(cli("validate", str(t), "--offline"), str(t))
    assert "--offline forbids fetching it" in msg


def test_remote_import_fetched_once_then_cached(cli, tmp_path):
    served = tmp_path / "srv"
    served.mkdir()
    (served / "extra.yaml").write_text("""tosca_definitions_version: tosca_simple_yaml_1_0
node_types:
  my.nodes.Thing:
    derived_from: tosca.nodes.SoftwareComponent
""")
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *args):
            hits.append(self.path)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/extra.yaml"
        t = tmp_path / "t.yaml"
        t.write_text(f"""tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - {url}
topology_template:
  node_templates:
    h: {{type: tosca.nodes.Compute}}
    thing: {{type: my.nodes.Thing, requirements: [{{host: h}}]}}
""")
        assert cli("validate", str(t)).code == 0
        assert cli("validate", str(t), "--offline").code == 0  # from the cache
        assert len(hits) == 1
    finally:
        srv.shutdown()


def test_helm_release_on_a_plain_vm(cli, tmp_path):
    t = seed_with(tmp_path, "        - host: k8s_master\n", "        - host: k8s_master_server\n")
    line, _c, msg = one_error(cli("validate", str(t)), str(t))
    assert line == line_of(t, "- host: k8s_master_server")
    assert "needs a tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes" in msg


def test_worker_without_front_end(cli, tmp_path):
    t = tmp_path / "w.yaml"
    t.write_text("""tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    h: {type: tosca.nodes.indigo.Compute}
    wn:
      type: tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes
      requirements: [{host: h}]
""")
    line, _c, msg = one_error(cli("validate", str(t)), str(t))
    assert line == 5 and "no tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes" in msg


def test_unknown_attribute(cli, tmp_path):
    t = seed_with(tmp_path, "[ k8s_master_server, public_address, 0 ] }\n        name",
                  "[ k8s_master_server, public_adress, 0 ] }\n        name")
    line, _c, msg = one_error(cli("validate", str(t)), str(t))
    assert line == line_of(t, "public_adress")
    assert 'node "k8s_master_server" has no attribute' in msg and '"public_adress"' in msg


def test_all_errors_at_once(cli, tmp_path):
    t = seed_with(tmp_path, MASTER_PROPS, "        admin_tokn: testme\n" + MASTER_PROPS)
    t.write_text(t.read_text().replace("        kube_version: 1.14.0\n        nfs", "        kube_versio: 1.14.0\n  "
                                       "      nfs"))
    r = cli("validate", str(t))
    assert r.code == 1
    assert len(r.err.strip().splitlines()) == 2


def test_missing_template_file(cli, tmp_path):
    _l, _c, msg = one_error(cli("validate", str(tmp_path / "nope.yaml")))
    assert "cannot read template" in msg


@pytest.mark.parametrize("body", ["[]", "just text", "tosca_definitions_version: 9"])
def test_not_a_template(cli, tmp_path, body):
    t = tmp_path / "x.yaml"
    t.write_text(body + "\n")
    one_error(cli("validate", str(t)), str(t))


def test_json_errors(cli, tmp_path):
    import json
    t = seed_with(tmp_path, MASTER_PROPS, "        admin_tokn: testme\n" + MASTER_PROPS)
    r = cli("validate", str(t), "--json")
    assert r.code == 1
    data = json.loads(r.out)
    assert data["valid"] is False and data["errors"][0]["line"] == line_of(t, "admin_tokn")


def test_duplicate_key_is_a_located_warning_and_the_last_wins(cli, tmp_path):
    """As lenient as PyYAML, tosca-parser and the Infrastructure Manager (a real DODAS
    template has two `value:` keys in an output), and saying so where it happens."""
    t = seed_with(tmp_path, "        kube_version: 1.14.0\n        kube_front_end_ip",
                  "        kube_version: 1.14.0\n        kube_version: 1.15.0\n        kube_front_end_ip")
    line = line_of(t, "kube_version: 1.15.0")
    where = f"{t}:{line}:9:"
    what = f'duplicate key "kube_version" (first defined on line {line - 1}): the value on line {line} is used'
    assert f"{where} warning: {what}" in cli("plan", str(t)).err
    r = cli("plan", str(t), "--json")  # under --json, warnings are in the JSON, and stderr stays empty
    assert r.code == 0, r.err
    assert any(w.startswith(f"{where} {what}") for w in json.loads(r.out)["warnings"]) and r.err == ""
    master = next(i for i in json.loads(r.out)["instances"] if i["node"] == "k8s_master")
    assert master["properties"]["kube_version"] in ("1.15.0", "1.15"), "the last one wins"


def test_duplicate_key_is_an_error_with_strict(cli, tmp_path):
    t = tmp_path / "dup.yaml"
    t.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n"
                 "    vm: {type: tosca.nodes.indigo.Compute}\n  outputs:\n    address:\n"
                 "      value: {get_attribute: [vm, private_address]}\n"
                 "      value: {get_attribute: [vm, public_address]}\n")
    assert cli("validate", str(t)).code == 0
    line, col, msg = one_error(cli("validate", str(t), "--strict"), str(t))
    assert (line, col) == (8, 7) and msg.startswith('duplicate key "value" (first defined on line 7)')


def test_constraint_checked_before_anything_else_is_loaded():
    """A fresh process: the constraint check must not depend on what the parser imported before."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "dodas", "plan", str(SEED.parent / "spark-jupyter.yaml"),
                        "-i", "number_of_workers=0"], capture_output=True, text=True)
    assert r.returncode == 1 and "violates constraint greater_or_equal: 1 (got 0)" in r.stderr


@pytest.mark.parametrize("version", ["tosca_simple_yaml_1_0", "tosca_simple_yaml_1_2", "tosca_simple_yaml_1_3"])
def test_every_simple_profile_version_is_accepted_and_imports_may_mix(cli, tmp_path, version):
    other = "tosca_simple_yaml_1_3" if version != "tosca_simple_yaml_1_3" else "tosca_simple_yaml_1_0"
    (tmp_path / "types.yaml").write_text(f"tosca_definitions_version: {other}\nnode_types:\n  my.App:\n"
                                         "    derived_from: tosca.nodes.SoftwareComponent\n")
    t = tmp_path / "t.yaml"
    t.write_text(f"tosca_definitions_version: {version}\nimports:\n  - types.yaml\ntopology_template:\n"
                 "  node_templates:\n    vm: {type: tosca.nodes.indigo.Compute}\n"
                 "    app: {type: my.App, requirements: [{host: vm}]}\n")
    r = cli("validate", str(t))
    assert r.code == 0, r.err


def test_unknown_top_level_section_says_what_was_meant(cli, tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_templat:\n  node_templates: {}\n")
    line, col, msg = one_error(cli("validate", str(t)), str(t))
    assert (line, col) == (2, 1)
    assert msg == 'unknown top-level section "topology_templat"; did you mean "topology_template"?'


def test_a_wrong_attribute_is_reported_at_the_reference(cli, tmp_path):
    spark = (ROOT / "templates" / "spark-jupyter.yaml").read_text()
    t = tmp_path / "t.yaml"
    t.write_text(spark.replace("{ get_attribute: [ jupyter, token ] }", "{ get_attribute: [ jupyter, tokn ] }"))
    line, col, msg = one_error(cli("validate", str(t)), str(t))
    assert line == line_of(t, "get_attribute: [ jupyter, tokn ]") and col > 10
    assert msg == 'output "jupyter_token": get_attribute: node "jupyter" has no attribute "tokn"'


def test_a_missing_requirement_is_named(cli, tmp_path):
    spark = (ROOT / "templates" / "spark-jupyter.yaml").read_text()
    t = tmp_path / "t.yaml"
    t.write_text(spark.replace("        - master: spark_master\n", ""))
    line, _col, msg = one_error(cli("validate", str(t)), str(t))
    assert msg == ('node "spark_worker": missing requirement "master": add "- master: <node>" to its requirements '
                   "(its type requires it)")
    assert line > line_of(t, "spark_worker:")
