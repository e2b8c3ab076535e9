"""`python -m dodas ARGS` in a child process bounded by what the hostile-input tests
mean: memory (an address-space limit, and the peak resident memory asserted) and
CPU time (a hang in dodas is a loop that burns CPU). Neither bound is wall time, so
a busy machine makes the child slower, never the test fail. A child that blocks
without using CPU is left to the per-test hang guard (pytest-timeout)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

#: what a child process may map: far more than any valid template needs
MEMORY_LIMIT = 1536 * 1024 * 1024
#: what it may actually use (a MemoryError caught and ignored would stay under the limit)
MEMORY_BOUND = 1024 * 1024 * 1024
#: the CPU seconds a child may spend: a validate spends a few (mostly imports), so only a
#: loop reaches this; CPU time, unlike wall time, does not grow with the machine's load
CPU_LIMIT_S = 60


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    #: the child's peak resident memory, in bytes
    max_rss: int


#: `python -m dodas ARGS` that writes its peak resident memory (VmHWM, kB) to the file
#: named first, on its way out
PEAK = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status:
        found = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    with open(out, "w") as f:
        f.write(found[0] if found else "")
atexit.register(peak)
sys.argv[0] = "dodas"
runpy.run_module("dodas", run_name="__main__", alter_sys=True)
"""


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    # SIGXCPU at the soft limit, SIGKILL a little later should it be caught
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_limited(*args: str) -> Run:
    """`python -m dodas ARGS` in a child with an address-space and a CPU-time limit
    (DODAS_HOME and any DODAS_* limits come from the test's environment). Its peak
    memory is asserted to stay under MEMORY_BOUND (a MemoryError that the code
    swallows still shows there), and a child stopped by the CPU limit fails the test
    as a hang."""
    hwm = tempfile.NamedTemporaryFile(prefix="dodas-hwm-", delete=False)
    hwm.close()
    proc = subprocess.Popen([sys.executable, "-c", PEAK, hwm.name, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_limits)
    got: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()), daemon=True)
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    try:
        for t in readers:
            t.start()
        for t in readers:
            t.join()  # no wall-clock limit: the CPU limit ends a loop, the per-test guard anything else
        _pid, status, usage = os.wait4(proc.pid, 0)  # reaped here, with its resource usage
    except BaseException:  # the hang guard interrupted the wait: leave no child behind
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    shown = " ".join(a[:80] for a in args)
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode == -signal.SIGXCPU or (proc.returncode == -signal.SIGKILL and cpu >= CPU_LIMIT_S):
        pytest.fail(f"dodas {shown} hung: stopped after {cpu:.0f} s of CPU (the limit is {CPU_LIMIT_S} s) "
                    "without answering")
    peak = Path(hwm.name).read_text().strip()
    os.unlink(hwm.name)
    # the process's own peak (VmHWM); getrusage's ru_maxrss would include this test
    # process's memory at the fork, which is large once other tests ran in it
    run = Run(proc.returncode, got.get("out", ""), got.get("err", ""), int(peak or 0) * 1024)
    assert run.max_rss < MEMORY_BOUND, (f"dodas used {run.max_rss >> 20} MiB", run.stderr[-2000:])
    return run
