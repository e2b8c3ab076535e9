"""Benchmark: the ML pipeline example (issue 17, Speed), in one run on this machine.

(1) `dodas up templates/ml-pipeline.yaml` from a clean start: the whole command,
    and the pipeline's own stages as the deployment reports them (generating the
    Avro access log, the PySpark job on the deployed cluster, training, upload,
    upload-to-servable).
(2) The same PySpark job (the pipeline's features.py, on the same data set) in
    Spark's local mode (local[2]) in this process's Python: the reference for
    what the cluster (executors in their own JVMs on the workers, the driver
    and the job's data over the network) costs on 2 cores.
(3) With --retrain: `up` again with a new data set (training continued from
    the served model).

    .venv/bin/python bench/bench_ml_pipeline.py [--retrain]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = str(ROOT / "templates" / "ml-pipeline.yaml")
SCRIPTS = ROOT / "src" / "dodas" / "configure" / "roles" / "ml_pipeline" / "files"


def dodas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dodas", *args], env=env, check=True, capture_output=True,
                          text=True)


def timed_up(env: dict[str, str], *extra: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    dodas(env, "up", TEMPLATE, "--name", "bench", "-q", "--yes", *extra)
    took = time.perf_counter() - t0
    outs = {k: v["value"] for k, v in json.loads(dodas(env, "outputs", "bench", "--json").stdout).items()}
    return took, outs


def local_mode(data: Path, out: Path) -> float:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(SCRIPTS / "features.py"), "--master", "local[2]", "--data", str(data),
                    "--out", str(out)], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "DODAS_HOME": home}
        try:
            took, outs = timed_up(env)
            rows.append(("dodas up templates/ml-pipeline.yaml (whole command)", took))
            for stage, seconds in outs["stages"].items():
                rows.append((f"  pipeline stage: {stage}", float(seconds or 0)))
            pipeline = next(Path(home, "data", "local").glob("*/master_host-0/pipeline/pipeline"))
            data = Path(json.loads((pipeline / "stages" / "data.json").read_text())["path"])
            rows.append(("features.py in Spark local mode (local[2], same data; reference)",
                         local_mode(data, Path(home) / "local-features.json")))
            if args.retrain:
                new = Path(home) / "new-data"
                subprocess.run([sys.executable, str(SCRIPTS / "accesslog.py"), str(new), "--seed", "2"], check=True,
                               capture_output=True)
                took, outs = timed_up(env, "-i", f"dataset={new}")
                rows.append(("dodas up with a new data set (retraining, whole command)", took))
                for stage, seconds in outs["stages"].items():
                    rows.append((f"  pipeline stage: {stage}", float(seconds or 0)))
            print(f"model {outs['model']}, accuracy {outs['accuracy']}")
        finally:
            subprocess.run([sys.executable, "-m", "dodas", "destroy", "bench", "--yes", "-q"], env=env, check=False,
                           capture_output=True)
    width = max(len(r[0]) for r in rows)
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:8.2f} s")
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); command: .venv/bin/python bench/bench_ml_pipeline.py"
          + (" --retrain" if args.retrain else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
