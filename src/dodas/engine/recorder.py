"""Where the engine's events go: the state first, then whoever watches.

Every state change and event of a run is written to the deployment's event
table here, below any face, so that a caller that shows nothing (a server, a
script, a test) loses none of them. A face that wants to show progress passes a
`Listener`; it only renders, it records nothing.
"""

from __future__ import annotations

import threading
from typing import Protocol

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
        self.lock = threading.Lock()

    def state(self, inst: str, state: str, detail: str = "") -> None:
        with self.lock:
            self.store.event(self.dep_id, "state", f"{state}" + (f": {detail}" if detail else ""), instance=inst,
                             level="error" if state == "error" else "info")
            if self.listener is not None:
                self.listener.state(inst, state, detail)

    def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None:
        with self.lock:
            self.store.event(self.dep_id, phase, message, instance=inst, level=level)
            if self.listener is not None:
                self.listener.event(inst, phase, message, level)
