"""Benchmark: does a bigger type library slow validation? This tree against a
baseline revision, in one run.

Times, as fresh processes (what a user waits for), alternating baseline and
current so that a noisy machine hurts both alike:

  * `dodas validate templates/dodas-course-spark-k8s.yaml`;
  * `dodas validate` of a generated template of --nodes compute nodes with Spark
    workers (bench_plan.py's template: INDIGO import, get_attribute everywhere).

The baseline is checked out with `git worktree` into a temporary directory and run
with the same Python (PYTHONPATH=its src), so only dodas's code and library differ.

    .venv/bin/python bench/bench_validate.py --baseline 69cf370 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_plan import make_template  # noqa: E402


def run_once(src: Path, template: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "DODAS_HOME": tempfile.mkdtemp(prefix="dodas-bench-")}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dodas", "validate", "--offline", template], env=env,
                       capture_output=True, text=True)
    took = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"validate failed with {src}:\n{r.stdout}\n{r.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="69cf370",
                    help="git revision to compare with (default: main before the published type files were declared)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.baseline],
                       check=True)
        try:
            big = Path(tmp) / f"spark-{args.nodes}.yaml"
            big.write_text(make_template(args.nodes))
            cases = {"course template": str(ROOT / "templates" / "dodas-course-spark-k8s.yaml"),
                     f"{args.nodes}-node template": str(big)}
            print(f"baseline {args.baseline} vs this tree, median of {args.repeat} alternating fresh processes")
            print("| template | baseline (s) | this tree (s) | ratio |\n|---|---|---|---|")
            for label, template in cases.items():
                run_once(base / "src", template)  # warm the page cache for both
                run_once(ROOT / "src", template)
                before, after = [], []
                for _ in range(args.repeat):
                    before.append(run_once(base / "src", template))
                    after.append(run_once(ROOT / "src", template))
                b, a = statistics.median(before), statistics.median(after)
                print(f"| {label} | {b:.2f} | {a:.2f} | {a / b:.2f} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)


if __name__ == "__main__":
    main()
