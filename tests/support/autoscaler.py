"""`dodas autoscale NAME --json` as a user runs it in the foreground, for the
tests that watch a real deployment scale: its decisions read as it prints them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

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


def deployment_record(home: Path, name: str) -> tuple[str | None, list[str]]:
    """The deployment's status and its instances ("node[index]") as the state database
    has them now (read-only; faster than a `dodas status` process)."""
    db = sqlite3.connect(f"file:{home / 'data' / 'state.db'}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("select id, status from deployments where name = ?", (name,)).fetchone()
        if row is None:
            return None, []
        ids = db.execute("select node, \"index\" from instances where deployment_id = ? order by node, \"index\"",
                         (row[0],)).fetchall()
    finally:
        db.close()
    return row[1], [f"{node}[{index}]" for node, index in ids]


def _stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped (a SIGSTOP is delivered, not only sent), or it ended."""
    tasks = Path(f"/proc/{pid}/task")
    return all((t / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tTZ" for t in tasks.iterdir())


def kill_while_deploying(scaler: Any, home: Path, name: str, instance: str | None, timeout: float, *,
                         removing: tuple[str, int] | None = None) -> None:
    """SIGKILL the autoscaler (`scaler.proc`) while the deploy it runs is under way: making
    `instance` (it has a row), or, with `removing=(NODE, N)`, taking one of NODE's N
    instances away (NODE still has its N rows). Each look at the state database
    is taken while the autoscaler is stopped (SIGSTOP): only that process writes the
    deployment's record, so what is read cannot change before the kill, on a machine however
    busy (a look, then a kill, could land after the deploy ended, leaving nothing unfinished)."""
    pid, deadline = scaler.proc.pid, time.monotonic() + timeout

    def reached(ids: list[str]) -> bool:
        if removing:
            node, rows = removing
            return sum(1 for i in ids if i.startswith(f"{node}[")) == rows
        return instance in ids

    while True:
        assert scaler.proc.poll() is None, "the autoscaler ended before the deploy was under way"
        os.kill(pid, signal.SIGSTOP)
        while not _stopped(pid):
            time.sleep(0.005)
        status, ids = deployment_record(home, name)
        if status == "UPDATE_IN_PROGRESS" and reached(ids):
            os.kill(pid, signal.SIGKILL)
            assert scaler.proc.wait(timeout=60) == -signal.SIGKILL
            return
        os.kill(pid, signal.SIGCONT)
        ended = (status == "UPDATE_COMPLETE" and not reached(ids)) if removing else \
            (status == "UPDATE_COMPLETE" and reached(ids))
        assert not ended, f"the deploy ended between two looks: {status} {ids}"
        assert time.monotonic() < deadline, f"no deploy under way in {timeout:.0f} s: {status} {ids}"
        time.sleep(0.05)
