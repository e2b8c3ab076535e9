"""Each elastic instance's state (services/elastic_view.py), from dodas's
records, the autoscaler's memory and a workload reading: the CLUES-like view
`status` shows, and which instances are lost (degraded, replaced)."""

from __future__ import annotations

from dodas.elastic.decide import Instance, Memory
from dodas.elastic.workload import WorkerLoad, Workload
from dodas.services.autoscale import Target
from dodas.services.elastic_view import states

NODE = "worker_hosts"


def target(*insts: Instance) -> Target:
    return Target("el", "id", None, {}, 1, list(insts), len(insts))


def test_states_from_records_memory_and_workload():
    insts = [Instance(f"{NODE}[{i}]", i, s, f"10.2.0.{i}") for i, s in
             enumerate(["created", "started", "started", "created", "creating", "error", "created", "created"])]
    workload = Workload(0, (), (
        WorkerLoad("a", "10.2.0.0", False, 1, 0, "ALIVE"),            # idle
        WorkerLoad("b", "10.2.0.1", True, 1, 1, "ALIVE"),             # used
        WorkerLoad("c", "10.2.0.2", False, 1, 0, "DECOMMISSIONED"),   # drained by the autoscaler
        WorkerLoad("d", "10.2.0.3", False, 1, 0, "DECOMMISSIONED"),   # drained behind its back: lost
        WorkerLoad("g", "10.2.0.6", False, 1, 0, "DEAD"),             # lost
        WorkerLoad("h", "10.2.0.7", False, 1, 0, "DEAD"),             # DEAD while the autoscaler removes it
    ))
    memory = Memory(idle_since={"10.2.0.0": 1_000_000.0},
                    draining={f"{NODE}[2]": 1_000_100.0, f"{NODE}[7]": 1_000_100.0},
                    booting={f"{NODE}[4]": 1_000_200.0})
    got = {s["id"]: (s["state"], s["lost"]) for s in states(target(*insts), memory, workload)}
    assert got == {f"{NODE}[0]": ("idle", False), f"{NODE}[1]": ("used", False), f"{NODE}[2]": ("draining", False),
                   f"{NODE}[3]": ("failed", True), f"{NODE}[4]": ("booting", False), f"{NODE}[5]": ("failed", False),
                   f"{NODE}[6]": ("failed", True), f"{NODE}[7]": ("draining", False)}
    by_id = {s["id"]: s for s in states(target(*insts), memory, workload)}
    assert by_id[f"{NODE}[0]"]["since"].startswith("1970-01-12T13:46:40")
    assert by_id[f"{NODE}[6]"]["workload_state"] == "DEAD"


def test_without_the_workload_nothing_is_called_lost():
    insts = [Instance(f"{NODE}[0]", 0, "created", "10.2.0.0"), Instance(f"{NODE}[1]", 1, "error", "10.2.0.1")]
    got = [(s["state"], s["lost"]) for s in states(target(*insts), Memory(), None)]
    assert got == [("unknown", False), ("failed", False)]


def test_what_is_set_by_hand_survives_the_loops_saves(state_db, monkeypatch):
    """`dodas autoscale NAME --disable` writes beside the loop's memory; the loop's
    next save keeps it (on SQLite and PostgreSQL), and clearing it is exact."""
    from dodas.state import autoscalers

    if state_db.url:
        monkeypatch.setenv("DODAS_DB_URL", state_db.url)
    autoscalers.register("el")
    assert autoscalers.lease("me", 30, name="el") is not None
    autoscalers.control("el", [f"{NODE}[2]"], "disabled", 5.0)
    autoscalers.control("el", [f"{NODE}[1]"], "drain", 6.0)
    assert autoscalers.save("el", "me", 30, Memory(failures=2).to_json(), "a reason")
    assert autoscalers.controls("el") == {"disabled": {f"{NODE}[2]": 5.0}, "drain": {f"{NODE}[1]": 6.0}}
    assert Memory.from_json(autoscalers.stored_memory("el")).failures == 2, "the loop's memory is stored too"
    autoscalers.control("el", [f"{NODE}[1]", f"{NODE}[2]"], None, 7.0)
    assert autoscalers.controls("el") == {"disabled": {}, "drain": {}}


def test_a_worker_to_drain_goes_first_and_a_disabled_one_never():
    from dodas.elastic.decide import decide
    from dodas.elastic.policy import Policy

    p = Policy(node=NODE, count_input="n", min_instances=1, max_instances=4, idle_time=60.0, max_booting=2,
               cooldown=30.0, workload="spark", poll_interval=5.0, boot_timeout=300.0, source="policy elastic")
    insts = [Instance(f"{NODE}[{i}]", i, "started", f"10.2.0.{i}") for i in range(3)]
    busy = Workload(2, ("app",), tuple(WorkerLoad(str(i), f"10.2.0.{i}", True, 1, 1, "ALIVE") for i in range(3)))
    d = decide(p, busy, insts, Memory(), 0.0, cores_per_worker=1, deployed=3, drain=frozenset({f"{NODE}[1]"}))
    assert (d.action, d.count, d.remove) == ("remove", 2, (f"{NODE}[1]",)), d.reason
    assert "as asked by hand" in d.reason
    # the only worker, drained by hand with min 1: a new one comes in the same apply
    d = decide(p, busy, insts[:1], Memory(), 0.0, cores_per_worker=1, deployed=1, drain=frozenset({f"{NODE}[0]"}))
    assert (d.action, d.count, d.remove, d.replaced) == ("remove", 1, (f"{NODE}[0]",), (f"{NODE}[0]",)), d.reason
    idle = Workload(0, (), tuple(WorkerLoad(str(i), f"10.2.0.{i}", False, 1, 0, "ALIVE") for i in range(3)))
    m = Memory(idle_since={f"10.2.0.{i}": 0.0 for i in range(3)})
    d = decide(p, idle, insts, m, 100.0, cores_per_worker=1, deployed=3,
               disabled=frozenset({f"{NODE}[0]", f"{NODE}[2]"}))
    assert d.remove == (f"{NODE}[1]",)


def test_a_take_over_tells_a_scaling_once(state_db, monkeypatch):
    """A holder that told a scaling and died before carrying it out (kill -9): the
    process that takes over decides the same and carries it out without telling
    it again, so `status` lists it once; the decision and its event are stored
    together, a renewal keeps the last reason, and a holder that lost its lease
    tells nothing (on SQLite and PostgreSQL)."""
    import hashlib

    from dodas.elastic.decide import Decision
    from dodas.services.autoscale import _record, scaling_key
    from dodas.state import autoscalers
    from dodas.state.store import Store
    from support.waiting import wait_until

    if state_db.url:
        monkeypatch.setenv("DODAS_DB_URL", state_db.url)
    dep = Store().create("el", "local", "t.yaml", "x: 1", hashlib.sha256(b"x: 1").hexdigest(), {},
                         "UPDATE_COMPLETE")
    autoscalers.register("el")
    insts = [Instance(f"{NODE}[{i}]", i, "started", f"10.2.0.{i}") for i in range(3)]
    t = Target("el", dep.id, type("P", (), {"node": NODE})(), {}, 1, insts, 3)
    remove = Decision("remove", 2, (f"{NODE}[1]",), f"{NODE}[1] idle for 60 s; removing it")
    shown: list[str] = []

    def told() -> list[str]:
        return [e.message for e in Store().events(dep.id) if e.phase == "autoscale"]

    assert autoscalers.lease("first", 0.5, name="el") is not None
    memory = Memory()
    memory.told = scaling_key(t, remove)
    assert _record("el", "first", 0.5, memory, remove, remove.reason, None, shown.append)
    assert told() == [remove.reason] and Memory.from_json(autoscalers.stored_memory("el")).told == memory.told
    # ... and dies before its removal's deploy: its lease runs out, another process takes over
    held = wait_until(lambda: autoscalers.lease("second", 30, name="el"), "the lease to run out")
    assert held.previous == "first" and held.last_reason == remove.reason
    again = Memory.from_json(held.memory)
    assert again.told == scaling_key(t, remove), "the same deployment gives the same scaling"
    assert _record("el", "second", 30, again, remove, remove.reason, held.last_reason, shown.append, told=True)
    assert told() == [remove.reason], "told once"
    assert [d.reason for d in shown] == [remove.reason] * 2, "the process carrying it out still shows it"
    assert autoscalers.save("el", "second", 30, again.to_json(), None), "a renewal during the scale"
    assert autoscalers.lease("second", 30, name="el").last_reason == remove.reason, "a renewal keeps the reason"
    # the first one, were it still alive, tells nothing more
    late = Decision("wait", 3, (), "waiting for the workload")
    assert not _record("el", "first", 0.5, Memory(), late, late.reason, remove.reason, shown.append)
    assert told() == [remove.reason]
    # a later scaling from another count is a new decision, told; so is the same scaling once the
    # deployment's record changed (scaled by hand back to where it was, say)
    after = Target("el", dep.id, t.policy, {}, 1, insts[:2], 2)
    assert scaling_key(after, Decision("remove", 1, (f"{NODE}[0]",), "r")) != again.told
    later = Target("el", dep.id, t.policy, {}, 1, insts, 3, generation="2026-12-07T09:00:00+00:00")
    assert scaling_key(later, remove) != again.told
