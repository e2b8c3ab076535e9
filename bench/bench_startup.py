"""Benchmark: the fixed cost of a command, `dodas --help` and `dodas list` (of an
existing, empty state), this tree against another tree of dodas, in one run.

Each command is a fresh process (Python's start-up, the imports, the state's
check), run alternately with the two trees (A B A B ...) after a warm-up;
medians of the wall time and of the CPU time (user + system, from the OS's
accounting of the finished child), and the median of the pairs' ratios. The
other tree is any checkout (`git worktree add /tmp/old REV`); both run with
this environment's interpreter and libraries, each with its own `src/` first
on the path.

    .venv/bin/python bench/bench_startup.py --tree /tmp/old --repeat 11
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"--help": ["--help"], "list": ["list"]}


def run(tree: Path, args: list[str], home: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one `python -m dodas ARGS` with `tree`'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "DODAS_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dodas", *args], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, required=True, help="the other checkout of dodas (B)")
    ap.add_argument("--repeat", type=int, default=11)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        homes = {"A": Path(tmp) / "a", "B": Path(tmp) / "b"}
        trees = {"A": ROOT, "B": a.tree.resolve()}
        for name, args in COMMANDS.items():
            got: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
            for side in "AB":  # warm-up, and the state made before `list` is timed
                run(trees[side], args, homes[side])
            for _ in range(a.repeat):
                for side in "AB":
                    got[side].append(run(trees[side], args, homes[side]))
            ratio_wall = statistics.median(x[0] / y[0] for x, y in zip(got["A"], got["B"]))
            ratio_cpu = statistics.median(x[1] / y[1] for x, y in zip(got["A"], got["B"]) if y[1] > 0)
            med = {s: (statistics.median(w for w, _ in got[s]), statistics.median(c for _, c in got[s]))
                   for s in "AB"}
            print(f"dodas {name}: A wall {med['A'][0]:.3f} s cpu {med['A'][1]:.3f} s | "
                  f"B wall {med['B'][0]:.3f} s cpu {med['B'][1]:.3f} s | A/B wall {ratio_wall:.2f} cpu {ratio_cpu:.2f}")


if __name__ == "__main__":
    main()
