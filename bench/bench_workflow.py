"""Benchmark: plan, then apply, as whole `dodas` processes (issue "Plan, then apply").

Every figure is a fresh process started and waited for, its start-up included:
what a person at a terminal waits for. The floor of `up` and `destroy` is `dodas
plan` of the same template with no deployment (what any of them must do before
touching anything); the floor of `dodas --help` is `python -c "import typer"`.
The commands of one comparison alternate (A B A B ...) in the same run, so that
a drift of the machine's speed moves both; figures are medians, and each ratio
is the median of the ratios of the pairs (the ratio of the medians is shown
too).

Cases, on the zero-latency simulated provider (no machine is made: the engine's
own cost, the state's writes and the process's start-up are all there is):

  up N         `dodas up T --yes -q` of N instances, against `dodas plan T`      (target <= 1.5)
  plan again   `dodas plan T --name D` with D deployed and unchanged, against
               `dodas plan T` with no deployment                                  (target <= 1.2)
  destroy N    `dodas destroy D --yes -q` of N instances, against `dodas plan T`  (target <= 1.0)
  --help       `dodas --help` against `python -c "import typer"`                  (target <= 1.5)

    .venv/bin/python bench/bench_workflow.py --repeat 5
    .venv/bin/python bench/bench_workflow.py --quick     # 100 instances only, 3 repeats
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DODAS = [PY, "-m", "dodas"]


def template(path: Path, n: int) -> str:
    """N instances of one compute node (tests/support/livecluster.py `compute_template`)."""
    path.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          inputs:
            n: {{type: integer, default: {n}}}
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {{get_input: n}}}}}}
                host: {{properties: {{num_cpus: 1, mem_size: 1 GB}}}}
        """))
    return str(path)


class Runner:
    def __init__(self, home: Path, src: str | None = None) -> None:
        self.env = {**os.environ, "DODAS_HOME": str(home), "NO_COLOR": "1"}
        self.env.pop("DODAS_DB_URL", None)
        if src:  # another tree's dodas (a commit checked out elsewhere), with this venv
            self.env["PYTHONPATH"] = str(Path(src).resolve() / "src")

    def time(self, argv: list[str], check: bool = True) -> float:
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        took = time.perf_counter() - t0
        if check and p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-2000:]}")
        return took

    def dodas(self, *args: str, check: bool = True) -> float:
        return self.time([*DODAS, *args], check)


class Pairs:
    """Timings of one comparison, A against its floor B, pair by pair."""

    def __init__(self, label: str, floor: str, target: float) -> None:
        self.label, self.floor, self.target = label, floor, target
        self.a: list[float] = []
        self.b: list[float] = []

    def add(self, a: float, b: float) -> None:
        self.a.append(a)
        self.b.append(b)

    @property
    def ratio(self) -> float:
        return statistics.median(x / y for x, y in zip(self.a, self.b))

    def row(self) -> str:
        ma, mb = statistics.median(self.a), statistics.median(self.b)
        verdict = "met" if self.ratio <= self.target else "MISSED"
        return (f"| {self.label} | {self.floor} | {mb:.3f} | {ma:.3f} | {self.ratio:.2f} ({ma / mb:.2f}) "
                f"| <= {self.target} | {verdict} |")


def bench_size(r: Runner, tdir: Path, n: int, repeat: int) -> list[Pairs]:
    t = template(tdir / f"n{n}.yaml", n)
    dep = f"bench{n}"
    up = Pairs(f"`up` {n} instances", "`plan`, no deployment", 1.5)
    again = Pairs(f"`plan --name` of {n} deployed, no change", "`plan`, no deployment", 1.2)
    down = Pairs(f"`destroy --yes` {n} instances", "`plan`, no deployment", 1.0)
    floor = ["plan", t, "--name", "nothing-deployed", "-p", "sim"]
    r.dodas(*floor)  # warm-up (caches, the state database's creation)
    r.dodas("up", t, "--name", "warm", "--yes", "-q", "-p", "sim")
    r.dodas("destroy", "warm", "--yes", "-q")
    r.dodas("forget", "warm", check=False)
    for _ in range(repeat):
        up.add(r.dodas("up", t, "--name", dep, "--yes", "-q", "-p", "sim"), r.dodas(*floor))
        b = r.dodas(*floor)
        again.add(r.dodas("plan", t, "--name", dep, "-p", "sim"), b)
        b = r.dodas(*floor)
        down.add(r.dodas("destroy", dep, "--yes", "-q"), b)
        r.dodas("forget", dep, check=False)  # untimed: the next repeat starts from the same state
    return [up, again, down]


def bench_help(r: Runner, repeat: int) -> Pairs:
    p = Pairs("`dodas --help`", '`python -c "import typer"`', 1.5)
    r.dodas("--help")
    r.time([PY, "-c", "import typer"])
    for _ in range(repeat):
        p.add(r.dodas("--help"), r.time([PY, "-c", "import typer"]))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="pairs per comparison (median taken; default 5)")
    ap.add_argument("--quick", action="store_true", help="100 instances only, 3 repeats unless --repeat")
    ap.add_argument("--sizes", type=int, nargs="+", help="instance counts (default 100 1000)")
    ap.add_argument("--home-in", metavar="DIR", help="make the temporary DODAS_HOME (state database, the "
                    "simulated provider's records) in DIR, e.g. /dev/shm (default: the system's temporary directory)")
    ap.add_argument("--tree", help="measure the dodas of another source tree (e.g. `git archive` of a commit "
                                   "unpacked there) instead of this one")
    args = ap.parse_args()
    repeat = args.repeat if not args.quick or "--repeat" in sys.argv else 3
    sizes = args.sizes or ([100] if args.quick else [100, 1000])
    home = Path(tempfile.mkdtemp(prefix="dodas-bench-workflow-", dir=args.home_in))
    try:
        (home / "config").mkdir(parents=True)
        (home / "config" / "providers.yaml").write_text(
            "providers:\n  - {name: sim, type: simulated, rank: 1}\n")
        r = Runner(home, args.tree)
        rows: list[Pairs] = []
        for n in sizes:
            print(f"... {n} instances, {repeat} repeats", file=sys.stderr, flush=True)
            rows += bench_size(r, home, n, repeat)
        print("... --help", file=sys.stderr, flush=True)
        rows.append(bench_help(r, max(repeat, 5)))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"medians of {repeat} alternating pairs (--help: {max(repeat, 5)}); whole processes"
          + (f"; tree {args.tree}" if args.tree else "") + f"; DODAS_HOME in {home.parent}")
    print()
    print("| command (A) | floor (B) | B median (s) | A median (s) | A/B: median of pairs (of medians) "
          "| target | |")
    print("|---|---|---:|---:|---:|---|---|")
    for p in rows:
        print(p.row())
    print()
    for p in rows:
        print(f"{p.label}: ratio {p.ratio:.3f}  pairs: "
              + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(p.a, p.b)))


if __name__ == "__main__":
    main()
