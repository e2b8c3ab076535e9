"""`dodas plan` against a deployment, and `up` applying it: create, scale up and
down, an input change, a playbook change, a dead service, drift and a template
replacement, each planned and then applied for real on the local provider (real
Ansible runs, real processes), and each time the plan is checked against what
`up` then did. `up` asks where it must: without a terminal, a plan that deletes
or replaces needs --yes, and nothing changes without it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
from pathlib import Path

import pytest
from support.livecluster import Dodas, kill_leftovers, wait_for

SERVICE = """
- name: Start the application
  dodas_service:
    name: app
    instance_dir: "{{ dodas_instance_dir }}"
    command: [sleep, "600"]
    timeout: 30
    restart: "{{ dodas_restart | bool }}"
  register: app
- name: dodas_report
  ansible.builtin.set_fact:
    dodas_report:
      greeting: "{{ dodas_properties.greeting }}"
      services: {app: {pid: "{{ app.pid }}", pgid: "{{ app.pgid }}", log: "{{ app.log }}",
                       start: "{{ app.start | default('') }}"}}
"""


def write_template(tmp_path: Path, name: str = "farm.yaml", extra_task: str = "") -> Path:
    pb = tmp_path / "start.yml"
    if not pb.exists() or extra_task:
        head = '- hosts: "{{ dodas_target }}"\n  gather_facts: false\n  tasks:\n'
        pb.write_text(head + textwrap.indent(SERVICE.strip("\n") + "\n" + extra_task, "    "))
    t = tmp_path / name
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.App:
            derived_from: tosca.nodes.SoftwareComponent
            properties:
              greeting: {{type: string}}
            attributes:
              greeting: {{type: string}}
            interfaces:
              Standard:
                start: {{implementation: {pb}}}
                stop: {{implementation: playbooks/service_stop.yml}}
                delete: {{implementation: playbooks/service_delete.yml}}
        topology_template:
          inputs:
            n: {{type: integer, default: 2}}
            greeting: {{type: string, default: hello}}
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {{get_input: n}}}}}}
                host: {{properties: {{num_cpus: 1, mem_size: 256 MB}}}}
            app:
              type: my.nodes.App
              properties: {{greeting: {{get_input: greeting}}}}
              requirements: [{{host: box}}]
          outputs:
            greetings: {{value: {{get_attribute: [app, greeting]}}}}
        """))
    return t


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def plan(d: Dodas, *args: str) -> tuple[int, dict]:
    r = d.run("plan", *args, "--json", "--detailed-exitcode", check=False)
    assert r.returncode in (0, 2), r.stderr
    return r.returncode, json.loads(r.stdout)


def actions(p: dict) -> dict[str, str]:
    return {c["instance"]: c["action"] for c in p["changes"]}


def reasons(p: dict, inst: str) -> list[str]:
    return next(c["reasons"] for c in p["changes"] if c["instance"] == inst)


def states(d: Dodas, name: str) -> dict[str, dict]:
    r = d.run("status", name, "--json", check=False)  # exit 5 when a service is dead
    assert r.returncode in (0, 5), r.stderr
    return {i["id"]: i for i in json.loads(r.stdout)["instances"]}


def test_plan_then_up_through_a_deployments_life(d, tmp_path):
    t = str(write_template(tmp_path))
    # create: everything new; the placement names the provider up would use
    code, p = plan(d, t, "--name", "farm")
    assert code == 2 and p["deployment"]["exists"] is False and p["provider"] == "local"
    assert actions(p) == {"box[0]": "create", "box[1]": "create", "app[0]": "create", "app[1]": "create"}
    assert p["summary"] == {"create": 4, "reconfigure": 0, "restart": 0, "delete": 0}
    human = d.run("plan", t, "--name", "farm").stdout
    assert "Plan: 4 to create, 0 to reconfigure, 0 to delete." in human
    d.run("up", t, "--name", "farm")  # creating asks nothing, even without a terminal

    # nothing to change: exit 0, and the plan by deployment name (stored template) agrees
    code, p = plan(d, t, "--name", "farm")
    assert code == 0 and p["changes"] == [] and p["has_changes"] is False, p["changes"]
    code, p = plan(d, "farm")
    assert code == 0 and p["deployment"]["name"] == "farm"
    assert "no changes" in d.run("plan", "farm").stdout

    # scale up: one machine and its app to create; nothing else touched; up asks nothing (no deletion)
    before = states(d, "farm")
    code, p = plan(d, t, "--name", "farm", "-i", "n=3")
    assert code == 2 and actions(p) == {"box[2]": "create", "app[2]": "create"}
    d.run("up", t, "--name", "farm", "-i", "n=3")
    after = states(d, "farm")
    assert sorted(after) == ["app[0]", "app[1]", "app[2]", "box[0]", "box[1]", "box[2]"]
    for kept in ("app[0]", "app[1]"):
        assert after[kept]["services"]["app"]["pid"] == before[kept]["services"]["app"]["pid"], "not restarted"

    # the kept input: n=3 stays without -i; an input change reconfigures, and says which property
    code, p = plan(d, t, "--name", "farm", "-i", "greeting=bonjour")
    assert "n" in p["kept_inputs"] and p["changed_inputs"] == ["greeting"]
    assert actions(p) == {f"app[{i}]": "reconfigure" for i in range(3)}
    assert reasons(p, "app[0]") == ["property greeting changed"]
    assert p["output_changes"]["greetings"] == {"before": ["hello"] * 3, "after": "(known after apply)",
                                                "sensitive": False}
    d.run("up", t, "--name", "farm", "-i", "greeting=bonjour")
    assert d.outputs("farm")["greetings"] == ["bonjour"] * 3
    assert plan(d, t, "--name", "farm")[0] == 0

    # a playbook change: every app reconfigured, because of its playbook
    write_template(tmp_path, extra_task="- {name: A new step, ansible.builtin.debug: {msg: new}}\n")
    code, p = plan(d, t, "--name", "farm")
    assert actions(p) == {f"app[{i}]": "reconfigure" for i in range(3)}
    assert reasons(p, "app[1]") == ["playbook of start changed"]
    d.run("up", t, "--name", "farm")
    assert plan(d, t, "--name", "farm")[0] == 0

    # a dead service: restart, found by plan's own check (refresh is on by default)
    svc = states(d, "farm")["app[1]"]["services"]["app"]
    os.killpg(svc["pgid"], signal.SIGKILL)
    wait_for(lambda: states(d, "farm")["app[1]"]["services"]["app"]["alive"] is False, timeout=20)
    code, p = plan(d, t, "--name", "farm")
    assert actions(p) == {"app[1]": "restart"} and reasons(p, "app[1]") == ["service app is not running"]
    code, p = plan(d, t, "--name", "farm", "--no-refresh")
    assert code == 0 and p["refreshed"] is False, "without refresh, the records alone say nothing changed"
    d.run("up", t, "--name", "farm")
    assert states(d, "farm")["app[1]"]["services"]["app"]["alive"] is True
    assert plan(d, t, "--name", "farm")[0] == 0

    # scale down deletes: without a terminal, up refuses without --yes and changes nothing
    code, p = plan(d, t, "--name", "farm", "-i", "n=1")
    assert actions(p) == {"box[1]": "delete", "box[2]": "delete", "app[1]": "delete", "app[2]": "delete"}
    assert reasons(p, "box[2]") == ["box now has 1 instance"]
    r = d.run("up", t, "--name", "farm", "-i", "n=1", check=False)
    assert r.returncode == 1 and "--yes" in r.stderr and "deletes 4 instances" in r.stderr
    assert len(states(d, "farm")) == 6 and d.json("status", "farm")["inputs_sha256"]
    d.run("up", t, "--name", "farm", "-i", "n=1", "--yes")
    assert sorted(states(d, "farm")) == ["app[0]", "box[0]"]
    d.run("destroy", "farm", "--yes")


def test_drift_and_template_replacement(d, tmp_path):
    t = str(write_template(tmp_path))
    d.run("up", t, "--name", "drifty")
    dep_id = d.json("status", "drifty")["id"]
    # the machine box[1] is deleted behind dodas's back (its processes with it)
    svc = states(d, "drifty")["app[1]"]["services"]["app"]
    os.killpg(svc["pgid"], signal.SIGKILL)
    machine = d.home / "data" / "local" / dep_id / "box-1"
    assert machine.is_dir(), sorted(p.name for p in machine.parent.iterdir())
    shutil.rmtree(machine)

    r = d.run("refresh", "drifty", "--json")
    drift = json.loads(r.stdout)
    assert drift["missing"] == ["box[1]"] and drift["drift"] is True
    assert states(d, "drifty")["box[1]"]["state"] == "missing"
    events = [json.loads(line) for line in d.run("logs", "drifty", "--json").stdout.splitlines()]
    assert any(e["phase"] == "drift" and e["instance"] == "box[1]" for e in events)
    code, p = plan(d, t, "--name", "drifty", "--no-refresh")
    assert actions(p) == {"box[1]": "create", "app[1]": "reconfigure"}
    assert "deleted outside dodas" in reasons(p, "box[1]")[0]
    d.run("up", t, "--name", "drifty")
    assert machine.is_dir() and states(d, "drifty")["app[1]"]["services"]["app"]["alive"] is True
    assert plan(d, t, "--name", "drifty")[0] == 0

    # another template file under the same name replaces the deployment: plan says so, up asks
    other = write_template(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path, "other.yaml")
    code, p = plan(d, str(other), "--name", "drifty")
    assert p["replaces_template"] == str(Path(t).resolve())
    r = d.run("up", str(other), "--name", "drifty", check=False)
    assert r.returncode == 1 and "replaces the deployment made from" in r.stderr
    assert d.json("status", "drifty")["template"] == str(Path(t).resolve()), "nothing changed"
    d.run("up", str(other), "--name", "drifty", "--yes")
    assert d.json("status", "drifty")["template"] == str(other.resolve())
    d.run("destroy", "drifty", "--yes")


def test_plan_bad_input(d, tmp_path):
    r = d.run("plan", "nosuch", check=False)
    assert r.returncode == 4 and "neither a template file nor a deployment" in r.stderr
    t = str(write_template(tmp_path))
    r = d.run("up", t, "--name", "x", "--lock-timeout", "soon", check=False)
    assert r.returncode == 2 and "--lock-timeout" in r.stderr and "not a duration" in r.stderr
    assert d.json("list") == [], "nothing was made"
    r = d.run("up", t, "--name", "x", "--plan-only", "--json")
    assert json.loads(r.stdout)["summary"]["create"] == 4 and d.json("list") == []
    # a count the provider cannot hold is refused at plan time, with the provider's capacity
    r = d.run("plan", t, "--name", "x", "-i", "n=500", check=False)
    assert r.returncode == 1 and "cannot deploy on provider local" in r.stderr and "this machine has" in r.stderr


def _on_terminal(d: Dodas, answer: str, *args: str) -> tuple[int, str]:
    """Run dodas with a terminal as stdin and stdout (a pseudo-terminal), answer
    its question with `answer`, and return its exit code and what it showed."""
    import pty
    import select
    import subprocess

    from support.livecluster import DODAS

    master, slave = pty.openpty()
    proc = subprocess.Popen([*DODAS, *args], env={**d.env, "COLUMNS": "200"}, stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE, close_fds=True)
    os.close(slave)
    shown, answered = b"", False
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError(f"dodas said nothing for a minute: {shown.decode(errors='replace')}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: dodas exited
            break
        if not chunk:
            break
        shown += chunk
        if not answered and b"Apply this plan" in shown:
            os.write(master, answer.encode() + b"\n")
            answered = True
    os.close(master)
    code = proc.wait(timeout=600)
    return code, shown.decode(errors="replace") + proc.stderr.read().decode(errors="replace")


def test_up_asks_on_a_terminal_and_no_changes_nothing(d, tmp_path):
    t = str(write_template(tmp_path))
    d.run("up", t, "--name", "asked", "-i", "n=1")
    code, shown = _on_terminal(d, "n", "up", t, "--name", "asked", "-i", "n=2")
    assert code == 1 and "+ box[1]" in shown and "Plan: 2 to create" in shown and "not applied" in shown
    assert sorted(states(d, "asked")) == ["app[0]", "box[0]"], "answering no changed nothing"
    code, shown = _on_terminal(d, "y", "up", t, "--name", "asked", "-i", "n=2")
    assert code == 0, shown
    assert sorted(states(d, "asked")) == ["app[0]", "app[1]", "box[0]", "box[1]"]
    d.run("destroy", "asked", "--yes")


def test_scale_is_up_with_the_count_input(d, tmp_path):
    t = str(write_template(tmp_path))
    d.run("up", t, "--name", "sc", "-i", "n=1", "-i", "greeting=hey")
    d.run("scale", "sc", "box", "2")
    assert sorted(states(d, "sc")) == ["app[0]", "app[1]", "box[0]", "box[1]"]
    assert d.outputs("sc")["greetings"] == ["hey", "hey"], "the other inputs are kept"
    r = d.run("scale", "sc", "box", "1", check=False)
    assert r.returncode == 1 and "deletes 2 instances" in r.stderr and len(states(d, "sc")) == 4
    d.run("scale", "sc", "box", "1", "--yes")
    assert sorted(states(d, "sc")) == ["app[0]", "box[0]"]
    r = d.run("scale", "sc", "nosuch", "2", check=False)
    assert r.returncode == 1 and 'no node "nosuch"' in r.stderr and "app, box" in r.stderr
    r = d.run("scale", "sc", "app", "2", check=False)
    assert r.returncode == 1 and "no scalable count" in r.stderr
    r = d.run("scale", "gone", "box", "2", check=False)
    assert r.returncode == 4
    d.run("destroy", "sc", "--yes")
