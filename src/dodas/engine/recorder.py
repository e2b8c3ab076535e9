"""Where the engine's events go: the state first, then whoever watches.

Every state change and event of a run is written to the deployment's event
table here, below any face, so that a caller that shows nothing (a server, a
script, a test) loses none of them. A face that wants to show progress passes a
`Listener`; it only renders, it records nothing.

Within `batch()` (an engine run), the events of the thread that opened it (the
engine's loop) are kept and written in bulk: by the engine, in the transaction
that writes the instance states of the same turn of its loop (`drain`), and in
any case when the batch ends, exception or not. A crash loses at most the events
of the turn in flight. Events from other threads (the Ansible runner's) are
written at once, after whatever was kept, so that `dodas logs --follow` sees a
playbook's progress as it happens and the order of events is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Protocol

from dodas.state.store import Store


class Listener(Protocol):
    def state(self, inst: str, state: str, detail: str = "") -> None: ...

    def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None: ...


class Recorder:
    """The engine's Reporter: records, then tells the listener. Calls come from
    the engine's loop and from the Ansible runner's thread, hence the lock."""

    def __init__(self, store: Store, dep_id: str, listener: Listener | None = None) -> None:
        self.store = store
        self.dep_id = dep_id
        self.listener = listener
        self.lock = threading.RLock()
        self.kept: list[dict[str, Any]] = []
        self._owner: int | None = None  # the thread whose events are kept
        self._depth = 0
        self._wake: Callable[[], None] | None = None

    @contextmanager
    def batch(self, wake: Callable[[], None] | None = None) -> Iterator[None]:
        """Within: this thread's events are kept, to be written in bulk. `wake` is
        called when the first event is kept, so that its owner schedules a write
        (the engine: at the end of the current turn of its loop). On the way out,
        whatever is still kept is written."""
        with self.lock:
            if self._depth and self._owner != threading.get_ident():
                raise RuntimeError("a Recorder batches the events of one thread at a time")
            self._depth += 1
            if self._depth == 1:
                self._owner, self._wake = threading.get_ident(), wake
        try:
            yield
        except BaseException:
            self._end_batch()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the exception on its way out says more
                pass
            raise
        self._end_batch()
        self.flush()

    def _end_batch(self) -> None:
        with self.lock:
            self._depth -= 1
            if not self._depth:
                self._owner, self._wake = None, None

    def drain(self) -> list[dict[str, Any]]:
        """The events kept so far, which the caller now writes (Store.write)."""
        with self.lock:
            out, self.kept = self.kept, []
            return out

    def flush(self) -> None:
        with self.lock:
            events = self.drain()
            if events:
                self.store.add_events(self.dep_id, events)

    close = flush

    def _record(self, inst: str | None, phase: str, message: str, level: str) -> None:
        """Called with the lock held."""
        e = {"phase": phase, "message": message, "instance": inst, "level": level,
             "time": datetime.now(timezone.utc)}
        if self._owner is not None and self._owner == threading.get_ident():
            self.kept.append(e)
            if len(self.kept) == 1 and self._wake is not None:
                self._wake()
            return
        if self.kept:  # another thread's event: what was kept goes first, in one transaction
            events, self.kept = [*self.kept, e], []
            self.store.add_events(self.dep_id, events)
        else:
            self.store.event(self.dep_id, phase, message, instance=inst, level=level)

    def state(self, inst: str, state: str, detail: str = "") -> None:
        with self.lock:
            self._record(inst, "state", f"{state}" + (f": {detail}" if detail else ""),
                         "error" if state == "error" else "info")
            if self.listener is not None:
                self.listener.state(inst, state, detail)

    def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None:
        with self.lock:
            self._record(inst, phase, message, level)
            if self.listener is not None:
                self.listener.event(inst, phase, message, level)
