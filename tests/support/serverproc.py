"""`dodas server` as a process of a test: started on a free loopback port,
waited for until it answers, stopped with SIGTERM (then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict[str, str], log: Path, *args: str, cwd: Path | None = None,
          port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`dodas server ARGS --bind 127.0.0.1:PORT`, output appended to `log`; returns
    the process and its URL once /health answers. A free port can be taken
    between the look and the bind: then it tries another (unless `port` is given)."""
    for _ in range(3):
        bound = port or free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "dodas", "server", *args, "--bind", f"127.0.0.1:{bound}"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        url = f"http://127.0.0.1:{bound}"
        deadline = time.monotonic() + TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        stop(proc)
        if port is not None or "address already in use" not in log.read_text(errors="replace").lower():
            break
    pytest.fail(f"dodas server did not start (exit {proc.returncode}):\n{log.read_text(errors='replace')[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=TIMEOUT_S)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True and everything it started:
    SIGTERM to its group, then SIGKILL if it has not ended in 20 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
