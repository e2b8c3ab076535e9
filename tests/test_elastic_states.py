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
             enumerate(["started", "started", "started", "started", "configuring", "error", "started"])]
    workload = Workload(0, (), (
        WorkerLoad("a", "10.2.0.0", False, 1, 0, "ALIVE"),            # idle
        WorkerLoad("b", "10.2.0.1", True, 1, 1, "ALIVE"),             # used
        WorkerLoad("c", "10.2.0.2", False, 1, 0, "DECOMMISSIONED"),   # drained by the autoscaler
        WorkerLoad("d", "10.2.0.3", False, 1, 0, "DECOMMISSIONED"),   # drained behind its back: lost
        WorkerLoad("g", "10.2.0.6", False, 1, 0, "DEAD"),             # lost
    ))
    memory = Memory(idle_since={"10.2.0.0": 1_000_000.0}, draining={f"{NODE}[2]": 1_000_100.0},
                    booting={f"{NODE}[4]": 1_000_200.0})
    got = {s["id"]: (s["state"], s["lost"]) for s in states(target(*insts), memory, workload)}
    assert got == {f"{NODE}[0]": ("idle", False), f"{NODE}[1]": ("used", False), f"{NODE}[2]": ("draining", False),
                   f"{NODE}[3]": ("failed", True), f"{NODE}[4]": ("booting", False), f"{NODE}[5]": ("failed", False),
                   f"{NODE}[6]": ("failed", True)}
    by_id = {s["id"]: s for s in states(target(*insts), memory, workload)}
    assert by_id[f"{NODE}[0]"]["since"].startswith("1970-01-12T13:46:40")
    assert by_id[f"{NODE}[6]"]["workload_state"] == "DEAD"


def test_without_the_workload_nothing_is_called_lost():
    insts = [Instance(f"{NODE}[0]", 0, "started", "10.2.0.0"), Instance(f"{NODE}[1]", 1, "error", "10.2.0.1")]
    got = [(s["state"], s["lost"]) for s in states(target(*insts), Memory(), None)]
    assert got == [("unknown", False), ("failed", False)]
