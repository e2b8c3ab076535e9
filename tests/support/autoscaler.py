"""`dodas autoscale NAME --json` as a user runs it in the foreground, for the
tests that watch a real deployment scale: its decisions read as it prints them."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from support.livecluster import Dodas


class Autoscaler:
    """The loop as a process; `decisions` grows as it decides."""

    def __init__(self, d: Dodas, name: str, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self.proc = d.popen("autoscale", name, "--json")
        self.decisions: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.decisions.append(json.loads(line))

    def wait_for(self, action: str, timeout: float | None = None) -> dict:
        """The latest decision of `action` ("add", "remove"), once there is one (a hang guard only)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            found = [d for d in self.decisions if d["action"] == action]
            if found:
                return found[-1]
            assert self.proc.poll() is None, self.proc.stderr.read()
            time.sleep(0.2)
        pytest.fail(f"no {action} decision in {timeout or self.timeout:.0f} s: {self.decisions}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)
