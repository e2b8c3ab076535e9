"""The server's work queue on SQLite and on a real PostgreSQL: leases, order,
take-over of a dead worker's lease, hand-back; and two real `dodas server`
processes sharing one PostgreSQL, the one running a deployment killed with
SIGKILL, the other completing it without making anything twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from support import serverproc
from support.livecluster import compute_template
from support.statedb import execute, postgres_server, rows
from support.waiting import wait_until

from dodas.state import lock, queue


@pytest.fixture()
def db(state_db, monkeypatch):
    """This process's state database (the queue's functions open it): SQLite in
    the test's DODAS_HOME, or a fresh PostgreSQL database."""
    if state_db.url:
        monkeypatch.setenv("DODAS_DB_URL", state_db.url)
    else:
        monkeypatch.delenv("DODAS_DB_URL", raising=False)
    return state_db


def test_items_of_one_deployment_run_one_at_a_time_in_order(db):
    first = queue.enqueue("apply", "a", {"n": 1}, "alice")
    queue.enqueue("apply", "b", {}, "bob")
    third = queue.enqueue("destroy", "a", {}, "alice")
    got = queue.lease("w1#0", 30)
    assert got.item.id == first.id and got.previous is None and got.item.status == "running"
    other = queue.lease("w2#0", 30)
    assert other.item.deployment_name == "b", "a's second item waits for its first"
    assert queue.lease("w3#0", 30) is None
    assert queue.depth() == 3
    assert queue.finish(first.id, "w1#0") is True
    after = queue.lease("w3#0", 30)
    assert after.item.id == third.id and after.item.operation == "destroy"
    assert queue.finish(third.id, "w3#0", "it failed") is True
    by_id = {i.id: i for i in queue.items()}
    assert by_id[first.id].status == "done" and by_id[third.id].status == "failed"
    assert by_id[third.id].error == "it failed" and queue.depth() == 1


def test_an_expired_lease_is_taken_over_naming_its_holder_and_heartbeats_keep_one(db):
    # leases long enough to outlast any slowness while both must hold; then each step
    # chooses its lease length, and the test waits on the queue's clock (UTC) for its end
    item = queue.enqueue("apply", "a", {}, "alice")
    queue.lease("dead-host:1:1#w0", 3600)
    kept = queue.enqueue("apply", "b", {}, "alice")
    queue.lease("live-host:2:2#w0", 3600)
    assert queue.lease("w9#0", 30) is None, "nothing is free while both leases last"
    assert queue.heartbeat(item.id, "dead-host:1:1#w0", 0.2), "the dead one's last beat, then nothing"
    assert queue.heartbeat(kept.id, "live-host:2:2#w0", 0.2)
    short_until = datetime.now(timezone.utc) + timedelta(seconds=0.2)  # no earlier than those two ends
    assert queue.heartbeat(kept.id, "live-host:2:2#w0", 3600), "the live one beats on"
    wait_until(lambda: datetime.now(timezone.utc) > short_until, "both short leases to run out", every=0.02)
    taken = queue.lease("w9#0", 3600)
    assert taken is not None, "the dead one's lease ran out"
    assert taken.item.id == item.id and taken.previous == "dead-host:1:1#w0" and taken.item.leases == 2
    assert queue.lease("w8#0", 3600) is None, "the beating one keeps its item past its earlier expiry"
    assert queue.finish(item.id, "dead-host:1:1#w0") is False, "a lost lease records nothing"
    assert queue.heartbeat(item.id, "dead-host:1:1#w0", 30) is False
    assert queue.finish(item.id, "w9#0") is True
    assert {i.id: i.status for i in queue.items()} == {item.id: "done", kept.id: "running"}


def test_a_handed_back_item_is_leased_again_at_once(db):
    item = queue.enqueue("scale", "a", {"node": "w", "count": 2}, "alice")
    queue.lease("host:1:1#w0", 3600)
    assert queue.release(item.id, "host:1:1#w0") is True
    again = queue.lease("host:2:2#w0", 30)
    assert again.item.id == item.id and again.previous == "host:1:1#w0"


def test_workers_polling_at_once_never_share_an_item(db):
    ids = {queue.enqueue("apply", f"d{n}", {}, "alice").id for n in range(40)}
    taken: list[int] = []
    guard = threading.Lock()

    def work(n: int) -> None:
        while True:
            got = queue.lease(f"host:{n}:1#w0", 30)
            if got is None:
                return
            with guard:
                taken.append(got.item.id)
            queue.finish(got.item.id, f"host:{n}:1#w0")
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(ids), "every item once, none twice"
    assert queue.depth() == 0


def test_owners_and_what_each_caller_sees(db):
    assert queue.set_access("mine", "iss|alice", "alice", None)
    assert queue.set_access("shared", "iss|alice", "alice", "/cms")
    assert not queue.set_access("mine", "iss|bob", "bob", None), "a name is taken once"
    assert queue.access("mine").owner == "iss|alice"
    assert queue.names_visible_to("iss|alice", frozenset(), False) == ["mine", "shared"]
    assert queue.names_visible_to("iss|bob", frozenset({"/cms"}), False) == ["shared"]
    assert queue.names_visible_to("iss|bob", frozenset(), False) == []
    assert queue.names_visible_to("iss|root", frozenset(), True) == ["mine", "shared"]
    queue.drop_access("mine")
    assert queue.access("mine") is None


def test_a_lost_lease_frees_the_deployment_lock_of_its_holder_only(db, tmp_path):
    from dodas.state.store import Store

    store = Store()
    dep = store.create("locked", "sim", str(tmp_path / "t.yaml"), "x: 1", "0" * 64, {},
                       status="CREATE_IN_PROGRESS")
    execute(db.url or f"sqlite:///{Path(os.environ['DODAS_HOME']) / 'data' / 'state.db'}",
            "UPDATE deployments SET lock_owner = :o", {"o": "other-host:123:456"})
    with store.session() as s:
        assert lock.take_over(s, "locked", "third-host:1:1") is False, "another holder's lock stays"
        assert lock.take_over(s, "locked", "other-host:123:456") is True
    assert store.get(dep.name).lock_owner is None


# -- two servers on one PostgreSQL -------------------------------------------------------
@dataclass
class Shared:
    """What two servers of a test share: a PostgreSQL database, a DODAS_HOME (the
    simulated provider's "cloud" is files in it) and their environment."""

    db_url: str
    home: Path
    env: dict[str, str]
    template: str


@pytest.fixture()
def shared(tmp_path):
    srv = postgres_server()
    name = srv.new_database()
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)

    def make(provider: str, lease_seconds: int) -> Shared:
        (home / "config" / "providers.yaml").write_text(f"providers:\n  - {provider}\n")
        env = {**os.environ, "DODAS_HOME": str(home), "DODAS_DB_URL": srv.url(name), "PYTHONUNBUFFERED": "1",
               "DODAS_SERVER_LEASE_SECONDS": str(lease_seconds)}
        template = Path(compute_template(tmp_path / "boxes.yaml", count=20, cpus=1, mem="512 MiB")).read_text()
        return Shared(srv.url(name), home, env, template)
    try:
        yield make
    finally:
        srv.drop_database(name)


def _start(sh: Shared, log: Path) -> tuple[subprocess.Popen, str]:
    return serverproc.start(sh.env, log, "--workers", "1")


def test_a_killed_servers_deployment_is_completed_by_the_other_and_nothing_is_made_twice(tmp_path, shared):
    sh = shared("{name: sim, type: simulated, create_latency: 2.0, delete_latency: 0.05}", 3)
    home = sh.home
    a, url_a = _start(sh, tmp_path / "a.log")
    b = None
    try:
        r = httpx.post(f"{url_a}/api/v1/deployments", json={"name": "pool", "template": sh.template},
                       timeout=60)
        assert r.status_code == 202, r.text
        dep_id = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill A once some machines exist and others do not yet
            view = httpx.get(f"{url_a}/api/v1/deployments/pool", timeout=10).json()
            dep_id = view.get("id") or dep_id
            made = [i for i in view["instances"] if i.get("provider_id")]
            if 0 < len(made) < 20:
                break
            assert view["status"] != "CREATE_COMPLETE", "the deployment finished before the kill"
            time.sleep(0.1)
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        b, url_b = _start(sh, tmp_path / "b.log")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            view = httpx.get(f"{url_b}/api/v1/deployments/pool", timeout=10).json()
            if view["status"] in ("CREATE_COMPLETE", "CREATE_FAILED") and not view["work"]:
                break
            time.sleep(0.3)
        assert view["status"] == "CREATE_COMPLETE", (view, (tmp_path / "b.log").read_text())
        work = rows(sh.db_url, "SELECT status, leases, leased_by FROM work_items")
        assert len(work) == 1 and work[0][0] == "done" and work[0][1] == 2, work
        assert str(b.pid) in work[0][2], "the second server finished it"
        servers = {json.loads(f.read_text())["id"]
                   for f in (home / "data" / "simulated" / "sim" / view["id"]).glob("*.json")}
        recorded = {i["provider_id"] for i in view["instances"]}
        assert len(servers) == 20 and servers == recorded, "each machine once, all of them in the state"
        events = httpx.get(f"{url_b}/api/v1/deployments/pool/events", timeout=10).json()["items"]
        assert any("took over a lock" in e["message"] for e in events), events
        r = httpx.delete(f"{url_b}/api/v1/deployments/pool", timeout=30)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            view = httpx.get(f"{url_b}/api/v1/deployments/pool", timeout=10).json()
            if view["status"] == "DELETE_COMPLETE" and not view["work"]:
                break
            time.sleep(0.3)
        assert view["status"] == "DELETE_COMPLETE", view
        assert not list((home / "data" / "simulated" / "sim").glob("*/*.json")), "destroy left machines"
    finally:
        serverproc.stop(a)
        if b is not None:
            serverproc.stop(b)


def test_a_stopped_server_hands_its_work_back(tmp_path, shared):
    """SIGTERM: the worker stops taking work, finishes or hands back what it holds
    within the grace of one lease; a server started later finishes it."""
    sh = shared("{name: sim, type: simulated, create_latency: 3.0}", 1)
    a, url_a = _start(sh, tmp_path / "a.log")
    b = None
    try:
        r = httpx.post(f"{url_a}/api/v1/deployments", json={"name": "pool", "template": sh.template},
                       timeout=60)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if rows(sh.db_url, "SELECT status FROM work_items") == [("running",)]:
                break
            time.sleep(0.1)
        a.terminate()
        # uvicorn ends by raising the signal it caught again, as a process killed by it would
        assert a.wait(timeout=60) in (0, -signal.SIGTERM), (tmp_path / "a.log").read_text()
        assert "handed item" in (tmp_path / "a.log").read_text() or rows(
            sh.db_url, "SELECT status FROM work_items") == [("done",)]
        left = rows(sh.db_url, "SELECT status, lease_expires_at FROM work_items")
        assert left in ([("queued", None)], [("done", None)]), left
        b, url_b = _start(sh, tmp_path / "b.log")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if rows(sh.db_url, "SELECT status FROM work_items") == [("done",)]:
                break
            time.sleep(0.3)
        view = httpx.get(f"{url_b}/api/v1/deployments/pool", timeout=10).json()
        assert view["status"] == "CREATE_COMPLETE" and len(view["instances"]) == 20, view
    finally:
        serverproc.stop(a)
        if b is not None:
            serverproc.stop(b)
