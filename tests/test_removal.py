"""Removing chosen instances (model/indexes.py, services/removal.py): the plan
without the named instances, the others keeping their indexes, tested on plans
made from a small template in milliseconds; then `dodas up --remove` for real on
the local provider (real machines, real Ansible, real processes), where the
instances kept must be the very same processes at the same addresses."""

from __future__ import annotations

import json
import textwrap

import pytest
from support.livecluster import Dodas, kill_leftovers

from dodas import services
from dodas.errors import DodasError
from dodas.model import indexes
from dodas.model.deployment import Instance
from dodas.model.template import Template
from dodas.plan.diff import Desired, Recorded, compare
from dodas.services.removal import parse, removal_inputs

from support.templates import front_and_boxes

TEMPLATE = front_and_boxes(4)


@pytest.fixture(scope="module")
def tpl(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.yaml"
    path.write_text(textwrap.dedent(TEMPLATE))
    return Template.read(str(path))


def plan_of(tpl, **given):
    inputs = services.collect_inputs([f"{k}={v}" for k, v in given.items() if k == "n"])
    if "kept" in given:
        inputs[indexes.key("box")] = given["kept"]
    return services.plan_given(tpl, inputs, offline=True, environment=False)


def ids(plan, node: str) -> list[str]:
    return [i.id for i in sorted(plan.instances, key=lambda i: i.index) if i.node == node]


def test_reconcile_keeps_fills_the_lowest_and_drops_the_highest():
    assert indexes.reconcile([0, 2, 3], 3) == (0, 2, 3)
    assert indexes.reconcile([0, 2, 3], 4) == (0, 1, 2, 3)       # a scale-up fills the hole first
    assert indexes.reconcile([2, 5], 4) == (0, 1, 2, 5)
    assert indexes.reconcile([0, 2, 3], 2) == (0, 2)             # a lower count drops the highest, as always
    assert indexes.reconcile([], 2) == (0, 1)


def test_removing_a_middle_instance_keeps_the_others_indexes(tpl):
    before = plan_of(tpl, n=4)
    given, removed = removal_inputs(tpl, before, ["box[1]"])
    assert removed == {Instance("box", 1)}
    assert given["n"].value == 3 and given[indexes.key("box")].value == [0, 2, 3]
    after = services.plan_given(tpl, given, offline=True, environment=False)
    after.removed = dict.fromkeys(removed, "removed by name")
    assert ids(after, "box") == ["box[0]", "box[2]", "box[3]"]
    assert ids(after, "app") == ["app[0]", "app[2]", "app[3]"]
    # app[3] still runs on box[3] (its host, same index), and waits for web as before
    assert {d.id for d in after.instances[Instance("app", 3)].depends_on} == {"box[3]", "web[0]"}
    # the deployment keeps the indexes left with its inputs; 0..n-1 is never kept
    assert after.model.inputs[indexes.key("box")] == [0, 2, 3]
    assert indexes.key("box") not in before.model.inputs
    # against a deployment running all four: exactly box[1] and what it hosts go, and say why
    recorded = {i: Recorded("compute", "started") if p.node.is_compute else Recorded("software", "started", "h")
                for i, p in before.instances.items()}
    changes = compare(after, recorded, {i: Desired("h") for i in after.instances})
    assert {(c.instance, c.action) for c in changes} == {("box[1]", "delete"), ("app[1]", "delete")}
    assert all("removed by name (box[1])" in c.reasons[0] for c in changes)


def test_software_names_its_machine_and_several_go_at_once(tpl):
    before = plan_of(tpl, n=4)
    given, removed = removal_inputs(tpl, before, ["app[0]", "box[2]"])
    assert removed == {Instance("box", 0), Instance("box", 2)}
    after = services.plan_given(tpl, given, offline=True, environment=False)
    assert ids(after, "box") == ["box[1]", "box[3]"]


def test_kept_indexes_follow_the_count(tpl):
    # a later scale-up refills the lowest index removed; a scale-down drops the highest
    assert ids(plan_of(tpl, n=3, kept=[0, 2, 3]), "box") == ["box[0]", "box[2]", "box[3]"]
    grown = plan_of(tpl, n=4, kept=[0, 2, 3])
    assert ids(grown, "box") == ["box[0]", "box[1]", "box[2]", "box[3]"]
    assert indexes.key("box") not in grown.model.inputs, "0..n-1 again: nothing kept"
    assert ids(plan_of(tpl, n=2, kept=[0, 2, 3]), "box") == ["box[0]", "box[2]"]


@pytest.mark.parametrize(("names", "message"), [
    (["box"], "name an instance as NODE[INDEX]"),
    (["box[7]"], "box has no instance 7 (its instances: box[0], box[1], box[2], box[3])"),
    (["nope[0]"], 'the deployment has no node "nope"'),
    (["front[0]"], 'node "front" has no scalable count'),
])
def test_bad_names_are_refused_clearly(tpl, names, message):
    with pytest.raises(DodasError) as err:
        removal_inputs(tpl, plan_of(tpl, n=4), names)
    assert message in err.value.message


def test_parse():
    assert parse(" worker_hosts[12] ") == ("worker_hosts", 12)
    with pytest.raises(DodasError):
        parse("worker_hosts[-1]")


# -- for real: `dodas up --remove` on the local provider ---------------------------------------------
SERVICE_PLAYBOOK = """\
- hosts: "{{ dodas_target }}"
  gather_facts: false
  tasks:
    - name: Start the application
      dodas_service:
        name: app
        instance_dir: "{{ dodas_instance_dir }}"
        command: [sleep, "600"]
        timeout: 30
      register: app
    - name: dodas_report
      ansible.builtin.set_fact:
        dodas_report:
          services: {app: {pid: "{{ app.pid }}", pgid: "{{ app.pgid }}", log: "{{ app.log }}",
                           start: "{{ app.start | default('') }}"}}
"""


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def test_up_remove_takes_the_named_instance_only(d, tmp_path):
    (tmp_path / "start.yml").write_text(SERVICE_PLAYBOOK)
    t = tmp_path / "farm.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.App:
            derived_from: tosca.nodes.SoftwareComponent
            interfaces:
              Standard:
                start: {{implementation: {tmp_path / 'start.yml'}}}
                stop: {{implementation: playbooks/service_stop.yml}}
                delete: {{implementation: playbooks/service_delete.yml}}
        topology_template:
          inputs:
            n: {{type: integer, default: 3}}
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {{get_input: n}}}}}}
                host: {{properties: {{num_cpus: 1, mem_size: 256 MB}}}}
            app:
              type: my.nodes.App
              requirements: [{{host: box}}]
        """))
    d.run("up", str(t), "--name", "farm")
    before = {i["id"]: i for i in d.json("status", "farm")["instances"]}
    # the plan shows the removal and why; nothing else changes
    shown = d.run("plan", str(t), "--name", "farm", "--remove", "box[1]", "--json")
    p = json.loads(shown.stdout)
    assert {c["instance"]: c["action"] for c in p["changes"]} == {"box[1]": "delete", "app[1]": "delete"}
    assert "removed by name (box[1])" in p["changes"][0]["reasons"][0]
    human = d.run("plan", str(t), "--name", "farm", "--remove", "box[1]").stdout
    assert "box[1]" in human and "removed by name" in human
    bad = d.run("up", str(t), "--name", "farm", "--remove", "box[5]", "--yes", check=False)
    assert bad.returncode == 1 and "box has no instance 5" in bad.stderr and "Traceback" not in bad.stderr
    d.run("up", str(t), "--name", "farm", "--remove", "box[1]", "--yes")
    after = {i["id"]: i for i in d.json("status", "farm")["instances"]}
    assert sorted(after) == ["app[0]", "app[2]", "box[0]", "box[2]"]
    for kept in ("box[0]", "box[2]"):  # the same machines, at the same addresses
        assert after[kept]["private_address"] == before[kept]["private_address"]
    for kept in ("app[0]", "app[2]"):  # the same processes, never restarted
        assert after[kept]["services"]["app"]["pid"] == before[kept]["services"]["app"]["pid"]
        assert after[kept]["services"]["app"]["alive"] is True
    # a later up keeps the indexes; a scale-up fills the hole
    code = d.run("plan", str(t), "--name", "farm", "--detailed-exitcode", check=False).returncode
    assert code == 0
    d.run("up", str(t), "--name", "farm", "-i", "n=3")
    assert sorted(i["id"] for i in d.json("status", "farm")["instances"]) == [
        "app[0]", "app[1]", "app[2]", "box[0]", "box[1]", "box[2]"]
    d.run("destroy", "farm", "--yes")
