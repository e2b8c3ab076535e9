"""A worker's processes die with it (issue 28): a worker killed with SIGKILL
mid-configuration leaves its ansible-playbook (and the commands it runs)
running, as orphans; the worker that takes its work over stops every one of
them before it resumes, clears the dead worker's lock and ends its attempt as
interrupted. Real processes: a stand-in worker (support/standin_worker.py) runs
a real ansible-playbook through dodas's runner, and is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest
from support.paths import ROOT
from support.waiting import wait_until

from dodas import procs
from dodas.services import jobs
from dodas.state import queue
from dodas.state.store import Store


@pytest.fixture
def db(state_db, monkeypatch):
    if state_db.url:
        monkeypatch.setenv("DODAS_DB_URL", state_db.url)
    else:
        monkeypatch.delenv("DODAS_DB_URL", raising=False)
    return state_db


def marked(dep_id: str) -> list[psutil.Process]:
    """The live processes of the deployment's configuration runs (DODAS_RUN=its id)."""
    out = []
    for ident in procs.find_by_env("DODAS_RUN", dep_id):
        try:
            p = psutil.Process(ident.pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def commandlines(ps: list[psutil.Process]) -> list[str]:
    out = []
    for p in ps:
        try:
            out.append(" ".join(p.cmdline()))
        except psutil.Error:
            continue
    return out


def test_a_take_over_stops_what_the_killed_worker_left_running(db, tmp_path):
    playbook = tmp_path / "forever.yml"
    playbook.write_text('- hosts: "{{ dodas_target }}"\n  gather_facts: false\n  tasks:\n'
                        "    - ansible.builtin.command: sleep 3600\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    worker = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "standin_worker.py"), "k9",
                               str(playbook)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    dep_id = None
    try:
        dep_id = worker.stdout.readline().strip()
        assert dep_id, worker.communicate()
        wait_until(lambda: any(c.startswith("sleep 3600") for c in commandlines(marked(dep_id))),
                   "the playbook's command to run", timeout=300)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        left = marked(dep_id)
        assert any("ansible-playbook" in c for c in commandlines(left)), "the kill left ansible-playbook running"
        assert any(c.startswith("sleep 3600") for c in commandlines(left)), "and the command it runs"

        held = wait_until(lambda: queue.lease(jobs.worker_owner("w1"), 60.0), "the dead worker's lease to expire")
        assert held.previous is not None and str(worker.pid) in held.previous
        jobs.take_over(held)
        assert marked(dep_id) == [], commandlines(marked(dep_id))
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in left if _exists(p))
        store = Store()
        dep = store.require("k9")
        assert dep.lock_owner is None, "the dead worker's lock is cleared"
        assert [a.status for a in store.attempts(dep.id)] == ["interrupted"]
        events = [e.message for e in store.events(dep.id)]
        assert any("took over a lock" in m and f"pid {worker.pid}" in m for m in events), events
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if dep_id:
            procs.terminate(procs.find_by_env("DODAS_RUN", dep_id), grace=5)


def _exists(p: psutil.Process) -> bool:
    try:
        return p.is_running()
    except psutil.Error:
        return False
