"""A stand-in for a server's worker, run as its own process by a test: it takes
the lease of a queued item and the deployment's lock as a worker does, starts an
attempt, then configures through dodas's AnsibleRunner (a real ansible-playbook,
marked with the deployment's id) a play that runs until killed. The test kills
this process with SIGKILL, as a server is killed mid-create.

    python standin_worker.py NAME PLAYBOOK"""

from __future__ import annotations

import sys

from dodas import paths
from dodas.configure.runner import AnsibleRunner, Host, Play
from dodas.model.deployment import Instance
from dodas.services import jobs
from dodas.state import lock, queue
from dodas.state.store import Store


def main(name: str, playbook: str) -> None:
    owner = jobs.worker_owner("w0")
    queue.enqueue("apply", name, {}, "alice")
    held = queue.lease(owner, 1.0)  # a short lease: it expires soon after the kill
    assert held is not None and held.item.deployment_name == name
    store = Store()
    dep = store.create(name, "sim", "t.yaml", "x: 1", "0" * 64, {}, status="CREATE_IN_PROGRESS")
    with store.session() as s:
        lock.acquire(s, s.get(type(dep), dep.id), lock.me())
    store.start_attempt(dep.id, "sim")
    runner = AnsibleRunner(paths.data_dir() / "deployments" / dep.id / "ansible", lambda *a: None, forks=1,
                           run_mark=dep.id)
    print(dep.id, flush=True)
    runner.run("configure", {"controller": Host("controller", None, None)},
               [Play("app", "start", playbook, {"controller": (Instance("app", 0), {})})])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
