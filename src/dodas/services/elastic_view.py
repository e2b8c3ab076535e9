"""Each instance of an elastic node as CLUES showed its nodes: a state and
since when, from the deployment's records, the autoscaler's memory and the
workload system's own view (one read of it).

- booting: asked for, not yet a worker of the workload (dodas still making it,
  or the worker not registered yet);
- idle: a worker running nothing, since it last had work in the workload's
  records (else since the autoscaler first saw it idle);
- used: a worker running something;
- draining: a worker being removed gracefully (the autoscaler drains it, or the
  workload says it is decommissioned);
- disabled: set aside by hand (`dodas autoscale NAME --disable`): never
  removed by the autoscaler, given no new work (Spark: decommissioned);
- failed: dodas's instance in error or its machine missing, or a worker the
  workload lists as DEAD, or decommissioned without the autoscaler asking,
  while dodas has it started. These are *lost*: `status` reports the deployment
  degraded, and the autoscaler replaces them (services/autoscale.py).

The workload is read with a short timeout; when it cannot be read, states come
from the records alone (a started instance is "unknown") and nothing is called lost (a master that does not
answer is not a worker that died).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

#: how long status waits for the workload system (it shows the records without it)
READ_TIMEOUT_S = 3.0


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, timezone.utc).isoformat() if t else None


def states(t: Any, memory: Any, workload: Any | None,
           controls: dict[str, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """One entry per live instance of the policy's node: id, state, since (ISO
    time or None), the workload's own word for it, and whether it is lost."""
    from dodas.elastic.decide import FAILED_STATES, GONE_STATES, _draining

    made = ("created", "started")  # a machine dodas has made (engine.states.COMPUTE_READY), or its software
    out = []
    for inst in sorted(t.instances, key=lambda i: i.index):
        if inst.state in GONE_STATES:
            continue
        w = None
        if workload is not None:
            w = next((x for x in workload.workers if inst.matches(x)), None)
        said = w.state if w is not None else None
        since: float | None = None
        lost = False
        disabled = (controls or {}).get("disabled") or {}
        if inst.state in FAILED_STATES:
            state = "failed"
        elif inst.id in disabled:
            state, since = "disabled", disabled[inst.id]  # decommissioned by hand, on purpose: never lost
        elif inst.id in memory.draining:  # the autoscaler removes it (its worker may be DEAD already)
            state, since = "draining", memory.draining[inst.id]
        elif workload is None and inst.state in made:
            state = "unknown"  # made and configured; what it does, only the workload could say
        elif w is not None and w.state.upper() == "DEAD" and inst.state in made:
            state, lost = "failed", True
        elif w is not None and _draining(w):
            state, since = "draining", memory.draining.get(inst.id)
            lost = since is None and inst.state in made  # drained, but not by the autoscaler
            if lost:
                state = "failed"
        elif w is not None and w.alive:
            if w.busy:
                state = "used"
            else:
                state, since = "idle", w.idle_since if w.idle_since is not None else memory.idle_since.get(w.host)
        else:
            state, since = "booting", memory.booting.get(inst.id)
        out.append({"id": inst.id, "state": state, "since": _iso(since), "workload_state": said, "lost": lost,
                    "dodas_state": inst.state})
    return out


def read_target(t: Any, memory_json: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    """The node states of an elastic deployment now (`t`: services/autoscale_target.Target),
    and why the workload could not be read (None when it was)."""
    from dodas.elastic.decide import Memory
    from dodas.elastic.readers import reader_for
    from dodas.state import autoscalers

    workload, problem = None, None
    try:
        reader = reader_for(t.policy.workload, **t.reader_params)
        workload = asyncio.run(asyncio.wait_for(reader.read(), READ_TIMEOUT_S))
    except Exception as exc:  # noqa: BLE001 - the workload system not answering is shown as such
        problem = f"cannot read the {t.policy.workload} workload: {_why(exc)}"
    return states(t, Memory.from_json(memory_json), workload, autoscalers.controls(t.name)), problem


def _why(exc: BaseException) -> str:
    from dodas.redact import redact
    return redact(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
