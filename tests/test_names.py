"""Names from templates never escape: node names with `..`, `/`, NUL or 300
characters become file names through one function, and nothing dodas writes or
deletes lies outside the deployment's own directories (checked on the real local
provider, with a real playbook writing into its instance directory)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from support.livecluster import Dodas, kill_leftovers

from dodas import paths

ESCAPE = "../" * 24 + "tmp/dodas-escape-"


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    yield dodas
    kill_leftovers(dodas.home)


def names_template(tmp_path: Path, names: list[str], compute: str = "box") -> str:
    """A compute node and one software node per name, each writing a file into its
    instance directory; deleted with dodas's own delete playbook."""
    pb = tmp_path / "create.yml"
    pb.write_text(textwrap.dedent("""\
        - hosts: "{{ dodas_target }}"
          gather_facts: false
          tasks:
            - ansible.builtin.file: {path: "{{ dodas_instance_dir }}", state: directory, mode: "0700"}
            - ansible.builtin.copy: {dest: "{{ dodas_instance_dir }}/marker", content: "made by dodas\\n", mode: "0600"}
        """))
    nodes = {compute: {"type": "tosca.nodes.indigo.Compute",
                       "capabilities": {"host": {"properties": {"num_cpus": 1, "mem_size": "256 MiB"}}}}}
    for n in names:
        nodes[n] = {"type": "my.nodes.Writer", "requirements": [{"host": compute}]}
    doc = {"tosca_definitions_version": "tosca_simple_yaml_1_0",
           "node_types": {"my.nodes.Writer": {"derived_from": "tosca.nodes.SoftwareComponent", "interfaces": {
               "Standard": {"create": {"implementation": str(pb)},
                            "delete": {"implementation": "playbooks/service_delete.yml"}}}}},
           "topology_template": {"node_templates": nodes}}
    t = tmp_path / "names.yaml"
    t.write_text(json.dumps(doc))  # JSON is YAML; it writes NUL as \\u0000
    return str(t)


def test_component_is_safe_bounded_and_unique():
    hostile = ["..", ".", "", "a/b", "a\0b", "x" * 300, ESCAPE + "x", ".hidden", "a b", "-x", "é", "a~b"]
    seen = {}
    for name in hostile + ["plain", "spark_worker", "a_b", "a-b.c"]:
        if not name:
            with pytest.raises(ValueError):
                paths.component(name)
            continue
        c = paths.component(name)
        assert "/" not in c and "\0" not in c and c not in (".", "..") and not c.startswith(".")
        assert 0 < len(c) <= 64
        assert c not in seen, (name, seen.get(c))
        seen[c] = name
    assert paths.component("spark_worker") == "spark_worker"  # plain names stay readable
    assert paths.instance_component("spark_worker[3]") == "spark_worker-3"
    assert paths.instance_component("a-1[0]") != paths.instance_component("a[10]")


def test_remove_tree_refuses_what_is_outside(tmp_path):
    base = tmp_path / "base"
    (base / "inside").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (base / "link").symlink_to(outside)
    for bad in (outside, base / ".." / "outside", base / "link" / "keep", base, tmp_path):
        with pytest.raises(paths.OutsideError):
            paths.remove_tree(bad, base)
    paths.remove_tree(base / "link", base)  # the link goes, not what it points to
    assert (outside / "keep").exists() and not (base / "link").exists()
    paths.remove_tree(base / "inside", base)
    assert not (base / "inside").exists()
    paths.remove_tree(base / "inside", base)  # gone already: fine


def test_hostile_node_names_write_and_delete_only_inside(d, tmp_path):
    tag = uuid.uuid4().hex[:8]
    escape = Path("/tmp") / f"dodas-escape-{tag}"
    escape.mkdir()
    (escape / "precious").write_text("must survive\n")
    names = [ESCAPE + tag, "a/b", "n" * 300, "x\0y", "..", "ok_name"]
    template = names_template(tmp_path, names, compute="../" * 8 + "evil-host")
    try:
        r = d.run("up", template, "--name", "names", check=False)
        assert r.returncode == 0, r.stderr
        st = d.json("status", "names")
        assert st["status"] == "CREATE_COMPLETE"
        markers = sorted(d.home.rglob("marker"))
        assert len(markers) == len(names)
        machine_root = d.home / "data" / "local" / st["id"]
        for m in markers:
            assert machine_root in m.parents
            assert len(m.parent.name) <= 64
        assert sorted(p.name for p in escape.iterdir()) == ["precious"], "nothing written outside"
        d.run("destroy", "names", "--yes")
        assert (escape / "precious").read_text() == "must survive\n", "nothing deleted outside"
        assert not machine_root.exists()
    finally:
        for p in sorted(escape.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        escape.rmdir()


def _dodas_files(args: dict) -> subprocess.CompletedProcess:
    """dodas's file module, run by a real `ansible` on this machine."""
    env = {**os.environ, "ANSIBLE_LIBRARY": str(paths.PLAYBOOKS_DIR / "library"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    return subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-m",
                           "dodas_files", "-a", json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_hosts_refuse_to_delete_outside_the_machine(tmp_path):
    """On a host, dodas deletes through its file module, which checks first that
    each path lies inside the machine's directory (after `..` and links)."""
    machine = tmp_path / "machine"
    (machine / "node").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (machine / "link").symlink_to(outside)
    for bad in (str(outside), f"{machine}/../outside", f"{machine}/link/keep", str(machine)):
        r = _dodas_files({"absent": [bad], "within": str(machine)})
        assert r.returncode != 0 and "is not inside" in r.stdout, r.stdout
    assert (outside / "keep").exists()
    r = _dodas_files({"absent": [f"{machine}/node"], "within": str(machine)})
    assert r.returncode == 0, r.stdout
    assert not (machine / "node").exists() and (outside / "keep").exists()


def test_the_file_module_keeps_owner_and_mode(tmp_path):
    """Directories and files with an owner, a group and a mode (HTCondor's spool
    belongs to nobody, its keys are root's 0600), kept so on later runs: written
    once, unchanged after, put back when they drift."""
    import grp
    import pwd

    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    spool, key = tmp_path / "state" / "spool", tmp_path / "etc" / "passwords.d" / "POOL"
    args = {"directories": [{"path": str(spool), "mode": "0755", "owner": "nobody", "group": "nogroup"},
                            {"path": str(key.parent), "mode": "0700"}],
            "files": [{"path": str(key), "content": "secret", "mode": "0600", "owner": "nobody", "group": "nogroup"}]}
    r = _dodas_files(args)
    assert r.returncode == 0 and "CHANGED" in r.stdout, r.stdout
    assert "secret" not in r.stdout + r.stderr
    assert (spool.stat().st_uid, spool.stat().st_gid, stat.S_IMODE(spool.stat().st_mode)) == (nobody, nogroup, 0o755)
    assert stat.S_IMODE(spool.parent.stat().st_mode) == 0o755, "a missing parent is made searchable"
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert (key.stat().st_uid, key.stat().st_gid, stat.S_IMODE(key.stat().st_mode)) == (nobody, nogroup, 0o600)
    assert key.read_text() == "secret"

    r = _dodas_files(args)
    assert r.returncode == 0 and "SUCCESS" in r.stdout and '"changed": false' in r.stdout, r.stdout

    spool.chmod(0o700)
    os.chown(key, 0, 0)
    r = _dodas_files(args)
    assert r.returncode == 0 and "CHANGED" in r.stdout, r.stdout
    assert stat.S_IMODE(spool.stat().st_mode) == 0o755 and key.stat().st_uid == nobody

    # (a file's entry is no_log as a whole, so Ansible masks its path and owner in the message)
    r = _dodas_files({"files": [{"path": str(tmp_path / "x"), "content": "", "owner": "no-such-user-here"}]})
    assert r.returncode != 0 and "no such user or group" in r.stdout, r.stdout
    r = _dodas_files({"directories": [{"path": str(tmp_path / "y"), "owner": "no-such-user-here"}]})
    assert r.returncode != 0 and f"{tmp_path / 'y'}: no such user or group" in r.stdout, r.stdout
    assert "no-such-user-here" in r.stdout, r.stdout
