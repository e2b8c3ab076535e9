"""What the rest of dodas asks of a template (model/template.py): declared inputs,
scalable nodes and the input each count reads, counts against a deployment's
inputs, and IM's counts in a sent template. Through the real loader, on the
templates dodas ships."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dodas.errors import DodasError, TemplateError
from dodas.model.template import Template
from dodas.services import catalogue, planning, scaling

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SPARK = TEMPLATES / "spark-jupyter.yaml"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A home of its own, with one simulated provider (prepare places the plan)."""
    monkeypatch.setenv("DODAS_HOME", str(tmp_path / "home"))
    providers = tmp_path / "providers.yaml"
    providers.write_text(json.dumps({"providers": [{"name": "sim", "type": "simulated", "rank": 1}]}))
    monkeypatch.setenv("DODAS_PROVIDERS", str(providers))
    for name in ("number_of_workers", "worker_cpus"):
        monkeypatch.delenv(f"DODAS_INPUT_{name}", raising=False)
    return tmp_path


def test_declared_inputs_with_types_constraints_defaults_and_secrets():
    spark = Template.read(str(SPARK)).inputs
    n = spark["number_of_workers"]
    assert (n.type, n.required, n.secret, n.constraints, n.has_default, n.default) == (
        "integer", False, False, (("greater_or_equal", 1),), True, 2)
    # a required input: no default
    image = Template.read(str(TEMPLATES / "spark-k8s.yaml")).inputs["server_image"]
    assert image.required and not image.has_default
    # a secret, by its name: its default is never part of the form
    secret = Template.read(str(TEMPLATES / "xcache-k8s.yaml")).inputs["origin_sss_secret"]
    assert secret.secret and "default" not in secret.to_json()
    assert secret.to_json()["constraints"] == []


def test_the_catalogue_describes_what_the_model_reads():
    described = catalogue.describe(SPARK)
    tpl = Template.read(str(SPARK))
    assert described["inputs"] == [i.to_json() for i in tpl.inputs.values()]
    assert described["inputs"][0] == {"name": "number_of_workers", "type": "integer", "required": False,
                                      "secret": False, "default": 2,
                                      "description": tpl.inputs["number_of_workers"].description,
                                      "constraints": [{"operator": "greater_or_equal", "value": 1}]}


def test_scalable_nodes_and_the_input_each_count_reads():
    tpl = Template.read(str(SPARK))
    assert tpl.scalable_inputs() == {"worker_hosts": "number_of_workers"}
    assert scaling.scalable_nodes(str(SPARK)) == {"worker_hosts": "number_of_workers"}
    assert tpl.scalable["master_host"].input is None and tpl.scalable["master_host"].written == 1
    assert tpl.count_input("worker_hosts") == "number_of_workers"
    with pytest.raises(DodasError, match=r'fixed count \(1\)'):
        tpl.count_input("master_host")
    with pytest.raises(DodasError, match=r'no node "nosuch" \(its nodes: .*master_host'):
        tpl.count_input("nosuch")
    with pytest.raises(DodasError, match="no scalable count"):
        tpl.count_input("spark_master")
    assert scaling.scale_inputs(tpl, "worker_hosts", 4)["number_of_workers"].value == 4


def test_counts_are_the_deployments_not_the_templates_defaults():
    tpl = Template.read(str(SPARK))
    assert tpl.counts({"number_of_workers": 5}) == {"master_host": 1, "worker_hosts": 5}
    # an input the deployment never had: the declaration's default
    assert tpl.counts({}) == {"master_host": 1, "worker_hosts": 2}
    assert scaling.counts(tpl, {"number_of_workers": 5}) == {"worker_hosts": 5}


def test_im_counts_of_a_sent_template_read_the_deployments_inputs():
    """IM's POST of a template whose count reads an input: the count is the
    deployment's value of that input (5, after a scale), not the sent template's
    default (2), so a template sent back unchanged asks for no change."""
    text = SPARK.read_text(encoding="utf-8")
    assert scaling.sent_counts(text, {"number_of_workers": 5}) == {"master_host": (1, ()), "worker_hosts": (5, ())}
    written = "count: { get_input: number_of_workers }"
    assert written in text
    asked = text.replace(written, "count: 3, removal_list: ['1']")  # CLUES's way: the count it wants
    assert scaling.sent_counts(asked, {"number_of_workers": 5})["worker_hosts"] == (3, ("1",))
    with pytest.raises(DodasError, match='node "worker_hosts": scalable.count is not a whole number'):
        scaling.sent_counts(text, {"number_of_workers": "many"})
    with pytest.raises(DodasError, match="no topology_template.node_templates"):
        scaling.sent_counts("tosca_definitions_version: tosca_simple_yaml_1_0\n", {})
    with pytest.raises(TemplateError, match=r"template.yaml:2:1: invalid YAML"):
        scaling.sent_counts("a: [\n", {})


def test_the_text_planned_is_the_text_stored(tmp_path):
    """`prepare` plans the template as it was read, and that text is what `up`
    stores: a file changed after it was read changes neither."""
    path = tmp_path / "spark.yaml"
    text = SPARK.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    tpl = Template.read(str(path))
    path.write_text(text.replace("default: 2", "default: 7", 1), encoding="utf-8")  # changed meanwhile
    dplan = planning.prepare(tpl, name="spark", offline=True, refresh=False, environment=False)
    assert dplan.text == text
    stored = planning.template_fields(dplan)
    assert stored["template_text"] == text
    assert stored["template_sha256"] == hashlib.sha256(text.encode()).hexdigest() == dplan.plan.model.template_sha256
    assert sum(1 for i in dplan.plan.instances if i.node == "worker_hosts") == 2


def test_a_template_that_cannot_be_read_is_a_located_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("topology_template:\n  inputs: [\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        Template.read(str(bad))
    with pytest.raises(TemplateError, match=r"cannot read template"):
        planning.prepare(str(tmp_path / "missing.yaml"), name="x", offline=True)


def test_the_remote_cli_sends_the_text_read_and_the_declared_inputs_variables(tmp_path, monkeypatch):
    """`dodas up --server`: the template's text as read once, DODAS_INPUT_ only
    for inputs the template declares (the model's declarations), inputs files
    through dodas's YAML loader (a bad one is a located error)."""
    from dodas.cli import remote_cli

    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("worker_cpus: 2\n", encoding="utf-8")
    monkeypatch.setenv("DODAS_INPUT_number_of_workers", "3")
    monkeypatch.setenv("DODAS_INPUT_not_declared", "x")
    body = remote_cli.request_body(str(SPARK), ["worker_cpus=4"], [str(inputs)])
    assert body["template"] == SPARK.read_text(encoding="utf-8")
    assert body["inputs"] == {}, "-i wins over the file: the precedence is resolved once, here as locally"
    assert body["cli_inputs"] == {"worker_cpus": "4", "number_of_workers": "3"}
    body = remote_cli.request_body(str(SPARK), [], [str(inputs)])
    assert body["inputs"] == {"worker_cpus": 2} and body["cli_inputs"] == {"number_of_workers": "3"}
    with pytest.raises(DodasError, match=r"is given twice: give each inputs file once"):
        remote_cli.request_body(str(SPARK), [], [str(inputs), str(inputs)])
    inputs.write_text("worker_cpus: 2\nworker_cpus: 3\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r'inputs.yaml:2:1: duplicate key "worker_cpus"'):
        remote_cli.request_body(str(SPARK), [], [str(inputs)])
