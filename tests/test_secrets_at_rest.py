"""Secrets never rest on disk outside the state, and ansible-playbook never gets
dodas's own environment: the run's private directory (inventory, artifacts) is
0700 and removed when the run ends, and what a killed run left is removed by the
next run or by destroy."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from support.livecluster import Dodas, environ_of, kill_leftovers, wait_for, wait_while_running
from support.templates import write_playbook_template

FAKE = {"AWS_SECRET_ACCESS_KEY": "fake-aws-secret-at-rest-1", "OS_PASSWORD": "fake-os-password-at-rest-2",
        "IAM_ACCESS_TOKEN": "fake-iam-token-at-rest-3"}


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    dodas.env.update(FAKE)
    dodas.env["DODAS_DB_URL"] = f"sqlite:///{dodas.home}/data/state.db"
    yield dodas
    kill_leftovers(dodas.home)


def _run_dirs(home: Path) -> list[Path]:
    return sorted(home.glob("data/deployments/*/ansible/ansible-*"))


def _files_holding(home: Path, values: list[str]) -> list[Path]:
    out = []
    for p in home.rglob("*"):
        if p.is_file() and not p.name.startswith("state.db"):
            data = p.read_bytes()
            if any(v.encode() in data for v in values):
                out.append(p)
    return out


def test_a_killed_run_leaves_no_secret_behind(d, tmp_path):
    from dodas import procs

    t = write_playbook_template(tmp_path, """
        - name: a long task
          ansible.builtin.command: sleep 600
          changed_when: false
        """)
    proc = d.popen("up", t, "--name", "rest")
    dep = wait_for(lambda: (json.loads(d.run("status", "rest", "--json", check=False).stdout or "{}") or {})
                   .get("id"), timeout=120)
    playbooks = wait_while_running(proc, lambda: procs.find_by_env("DODAS_RUN", dep), "ansible-playbook ran")
    # ansible-playbook and its modules: Ansible's settings, nothing of dodas's own environment
    for ident in playbooks:
        env = environ_of(ident.pid)
        assert env, "the run's processes are found"
        assert not {"DODAS_DB_URL", *FAKE} & set(env), sorted(env)
    [run_dir] = _run_dirs(d.home)
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    assert (run_dir / "inventory" / "hosts.yml").exists()
    assert _files_holding(d.home, list(FAKE.values())) == [], "no operator secret written anywhere"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _run_dirs(d.home) == [run_dir], "the killed run's directory is still there"
    d.run("destroy", "rest", "--yes")
    assert _run_dirs(d.home) == [], "destroy removes what the killed run left"


def test_the_next_up_removes_a_crashed_runs_directory(d, tmp_path):
    t = write_playbook_template(tmp_path, """
        - name: nothing much
          ansible.builtin.debug: {msg: hi}
        """)
    d.run("up", t, "--name", "next")
    dep = d.json("status", "next")["id"]
    left = d.home / "data" / "deployments" / dep / "ansible" / "ansible-configure-crashed"
    (left / "inventory").mkdir(parents=True)
    (left / "inventory" / "hosts.yml").write_text("jupyter_token: left-by-a-crash\n")
    d.run("up", t, "--name", "next", "-i", "unused=1", check=False)  # an update that fails to parse: no run
    assert left.exists()
    d.run("up", t, "--name", "next")
    assert not left.exists() and _run_dirs(d.home) == []
    d.run("destroy", "next", "--yes")
