"""The deployment lock between threads of one process: a `dodas server` runs a
worker's destroy and the autoscaler's scale of the same deployment in threads
of one process, and the lock must keep them apart (its owner names the thread,
"host:pid:start#tNNN"); only the thread holding it takes it again. What looks at
the holder (alive? stale? take-over after a dead worker) looks at the process.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import socket
import textwrap
import threading
from typing import Any

import pytest
from support.livecluster import compute_template
from support.waiting import wait_until

from dodas.state import lock
from dodas.state.store import Store


@pytest.fixture()
def db(state_db, dodas_home, monkeypatch):
    """This process's state (the services open it), and a simulated provider."""
    if state_db.url:
        monkeypatch.setenv("DODAS_DB_URL", state_db.url)
    else:
        monkeypatch.delenv("DODAS_DB_URL", raising=False)
    f = dodas_home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(textwrap.dedent("""\
        providers:
          - name: sim
            type: simulated
            rank: 1
        """))
    return state_db


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `fn` in a thread of its own; its result or exception lands in the dict."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def test_two_threads_of_one_process_exclude_each_other(db, tmp_path):
    store = Store()
    dep = store.create("twin", "sim", str(tmp_path / "t.yaml"), "x: 1", "0" * 64, {}, status="CREATE_COMPLETE")

    def take() -> str:
        with store.session() as s:
            lock.acquire(s, s.get(type(dep), dep.id))
            lock.acquire(s, s.get(type(dep), dep.id))  # the holding thread takes it again
        return lock.me()

    first, out = in_thread(take)
    first.join()
    owner = out["result"]
    assert store.get("twin").lock_owner == owner and owner.startswith(lock.process() + "#t")
    with store.session() as s:
        with pytest.raises(lock.LockedError) as refused:
            lock.acquire(s, s.get(type(dep), dep.id))
    assert "another operation of this same dodas" in refused.value.message, refused.value.message
    assert f"pid {lock.holder(owner).pid} on {socket.gethostname()}" in refused.value.message
    with store.session() as s:
        lock.release(s, dep.id)  # another thread's release leaves the lock alone
    assert store.get("twin").lock_owner == owner

    # the holder is this live process, whichever thread: not stale, and --force refuses it
    h = lock.holder(owner)
    assert (h.host, h.pid, h.process, h.alive) == (socket.gethostname(), h.pid, lock.process(), True)
    assert h.thread == owner.rsplit("#", 1)[1] and not lock.is_stale(owner) and lock.proven_alive(h)
    # a server's take-over names the process of the worker that lost its lease
    with store.session() as s:
        assert lock.take_over(s, "twin", "other-host:1:1") is False, "another process's lock stays"
        assert lock.take_over(s, "twin", lock.process()) is True
    assert store.get("twin").lock_owner is None
    with store.session() as s:
        lock.acquire(s, s.get(type(dep), dep.id))
    assert store.get("twin").lock_owner == lock.me()


def test_a_destroy_never_runs_alongside_an_apply_of_another_thread(db, tmp_path):
    """A server's case: one thread applies (the autoscaler's scale does), another
    destroys the same deployment. The apply is held mid-way (its progress
    listener waits), the destroy is refused with the usual message (called
    directly, and as a server's worker does it), a destroy
    that waits for the lock runs once the apply has finished, never alongside."""
    from dodas.cli.progress import factory
    from dodas.providers.simulated import server_count
    from dodas.server.workers import Worker
    from dodas.services import deploy, lifecycle, read
    from dodas.state import queue

    quiet = factory(quiet=True)
    template = compute_template(tmp_path / "boxes.yaml", count=2, cpus=1, mem="512 MiB")
    arrived, go = threading.Event(), threading.Event()

    class Holding:
        """The apply's listener: stops the apply at its first report until told to go."""

        def state(self, inst: str, state: str, detail: str = "") -> None:
            arrived.set()
            go.wait(3600)

        def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None:
            arrived.set()
            go.wait(3600)

    applying, applied = in_thread(deploy.up, template, name="pair", pairs=None, inputs_file=None,
                                  provider_name=None, parallelism=1, listener=Holding())
    waiting: threading.Thread | None = None
    try:
        wait_until(lambda: arrived.is_set() or "error" in applied, "the apply to be under way", timeout=600)
        assert "error" not in applied, applied
        holder = Store().require("pair").lock_owner
        assert holder and lock.holder(holder).process == lock.process()

        refused, out = in_thread(deploy.destroy, "pair", parallelism=1, listener=quiet)
        refused.join()
        err = out.get("error")
        assert isinstance(err, lock.LockedError), out
        assert 'deployment "pair" is locked: another operation of this same dodas' in err.message, err.message
        # a server's worker thread, given the destroy through the queue, is refused the same way
        queue.enqueue("destroy", "pair", {}, "alice")
        ran, worked = in_thread(Worker("w0").run_once)
        ran.join()
        assert worked.get("result") is True, worked
        item = queue.items("pair")[0]
        assert item.status == "failed" and item.error == err.message, (item.status, item.error)
        st = read.status("pair")
        assert st["status"] == "CREATE_IN_PROGRESS" and st["locked_by"] == holder, "the apply's run is untouched"

        waiting, waited = in_thread(lifecycle.destroy, "pair", parallelism=1, lock_timeout=3600, listener=quiet)
    finally:
        go.set()
    applying.join(600)
    assert not applying.is_alive() and "error" not in applied, applied
    assert waiting is not None
    waiting.join(600)
    assert not waiting.is_alive() and waited.get("result") == {"name": "pair", "status": "DELETE_COMPLETE"}, waited
    assert server_count("sim") == 0 and Store().require("pair").lock_owner is None
    # the destroy began only after the apply had completed
    events = [(e.phase, e.message) for e in sorted(Store().events(Store().require("pair").id, limit=10**6),
                                                   key=lambda e: e.id)]
    done = events.index(("deploy", "complete"))
    assert not any(phase == "delete" for phase, _ in events[:done]), events
