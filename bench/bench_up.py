"""Benchmark: `dodas up templates/spark-jupyter.yaml` against starting the same
cluster by hand (bench/manual_spark.sh), in one run, on this machine.

Times, each from a clean start and until verified-ready (every worker ALIVE at the
master, JupyterLab answering with its token):
  (a) dodas up with 2 workers;   (b) the shell script;
and then on the deployment of (a): `dodas up` when nothing changed, and a scale
from 2 to 4 workers. Every figure is the median of --repeat runs.

    .venv/bin/python bench/bench_up.py --repeat 3
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
TEMPLATE = str(ROOT / "templates" / "spark-jupyter.yaml")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    dodas = [sys.executable, "-m", "dodas"]
    results: dict[str, list[float]] = {"manual": [], "up": [], "noop": [], "scale": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            script = [str(ROOT / "bench" / "manual_spark.sh"), tmp, sys.executable]
            try:
                results["manual"].append(timed(script, dict(os.environ)))
            finally:
                subprocess.run([*script, "stop"], check=False)
                time.sleep(1)
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "DODAS_HOME": home}
            try:
                results["up"].append(timed([*dodas, "up", TEMPLATE, "--name", "b", "-q"], env))
                results["noop"].append(timed([*dodas, "up", TEMPLATE, "--name", "b", "-q"], env))
                results["scale"].append(timed([*dodas, "up", TEMPLATE, "--name", "b", "-q",
                                               "-i", "number_of_workers=4"], env))
            finally:
                subprocess.run([*dodas, "destroy", "b", "--yes", "-q"], env=env, check=False)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"runs: {args.repeat} (median, seconds)")
    print(f"(b) shell script, master + 2 workers + JupyterLab: {med['manual']:.1f}")
    print(f"(a) dodas up, same cluster, verified:             {med['up']:.1f}   ratio {med['up'] / med['manual']:.2f}")
    print(f"    dodas up, nothing changed:                    {med['noop']:.2f}")
    print(f"    dodas up, 2 -> 4 workers:                     {med['scale']:.1f}")
    print("all runs:", {k: [round(x, 2) for x in v] for k, v in results.items()})


if __name__ == "__main__":
    main()
