"""Benchmark: what the tests' JVM flags save, per test file, in CPU counted by the kernel.

tests/support/quickjava.py starts the tests' JVMs with the client compiler only and the
serial collector. This runs the same test files twice in one run, once with the JVMs'
defaults (DODAS_TEST_JIT=full: the reference) and once with the tests' flags, and prints
each file's CPU seconds both ways (tests/support/cpu_account.py: every process a file
started, its JVMs and daemons included) with the ratio, and a pyspark job's own CPU both
ways (spark-submit of a small job, `local[1]`, as a driver of a deployed cluster starts).

The two runs go at the same time by default (`--one-by-one` to run them in turn): CPU
time, unlike wall time, hardly changes with the load, and the pair then sees the same
machine.

    python3 bench/bench_test_java.py                      # the Spark-deploying files
    python3 bench/bench_test_java.py tests/test_local_spark.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"

SPARK_FILES = [
    "tests/test_local_spark.py", "tests/test_ml_pipeline.py", "tests/test_local_faults.py",
    "tests/test_autoscale_spark.py", "tests/test_autoscale_capacity.py", "tests/test_autoscale_server.py",
    "tests/test_autoscale_kill.py", "tests/test_elastic_spark_reader.py", "tests/test_bastion.py",
    "tests/test_dashboard_browser.py", "tests/test_server_spark.py", "tests/test_seed_orchestration.py",
    "tests/test_chart_processes.py",
]

JOB = """
from pyspark.sql import SparkSession
s = SparkSession.builder.master("local[1]").appName("bench").getOrCreate()
print(s.sparkContext.parallelize(range(100000)).map(lambda x: x * 2).sum())
s.stop()
"""


def _pytest(files: list[str], jit: str, report: Path) -> subprocess.Popen:
    env = dict(os.environ, CI="true", DODAS_TEST_CPU=str(report))
    if jit == "full":
        env["DODAS_TEST_JIT"] = "full"
    else:
        env.pop("DODAS_TEST_JIT", None)
    return subprocess.Popen([str(PY), "-m", "pytest", *files, "-q", "-p", "no:cacheprovider"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _job_cpu(flags: list[str], java_home: str, spark_submit: Path, where: Path) -> float:
    job = where / "job.py"
    job.write_text(JOB)
    env = dict(os.environ, JAVA_HOME=java_home, PYSPARK_PYTHON=str(PY))
    env.pop("JDK_JAVA_OPTIONS", None)
    if flags:
        env["JDK_JAVA_OPTIONS"] = " ".join(flags)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(spark_submit), "--conf", "spark.ui.enabled=false", str(job)],
                   env=env, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", default=SPARK_FILES)
    ap.add_argument("--one-by-one", action="store_true", help="the two runs in turn, not at once")
    args = ap.parse_args()
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    import pyspark
    from dodas.providers.local import find_java
    from support.quickjava import FLAGS

    java_home = find_java()["home"]  # the real one: this process is no test session
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    with tempfile.TemporaryDirectory(prefix="bench-test-java-") as tmp:
        work = Path(tmp)
        for _ in range(2):
            full = _job_cpu([], java_home, spark_submit, work)
            quick = _job_cpu(list(FLAGS), java_home, spark_submit, work)
            print(f"pyspark job, CPU: defaults {full:.1f} s, {' '.join(FLAGS)} {quick:.1f} s ({quick / full:.2f}x)")
        reports = {jit: work / f"{jit}.jsonl" for jit in ("full", "quick")}
        start = time.monotonic()
        outputs = {}
        if args.one_by_one:
            for jit in reports:
                proc = _pytest(args.files, jit, reports[jit])
                outputs[jit] = (proc.communicate()[0], proc.returncode)
        else:
            procs = {jit: _pytest(args.files, jit, reports[jit]) for jit in reports}
            outputs = {jit: (p.communicate()[0], p.returncode) for jit, p in procs.items()}
        print(f"both runs: {time.monotonic() - start:.0f} s of wall time")
        for jit, (out, code) in outputs.items():
            print(f"{jit}: exit {code}: {out.strip().splitlines()[-1] if out.strip() else ''}")
        cpu = {jit: {json.loads(line)["file"]: json.loads(line)["cpu_s"] for line in path.read_text().splitlines()}
               for jit, path in reports.items() if path.exists()}
        print(f"\n| file | defaults (s) | {' '.join(FLAGS)} (s) | ratio |\n|---|---:|---:|---:|")
        total = {"full": 0.0, "quick": 0.0}
        for f in sorted(cpu.get("full", {}), key=lambda f: -cpu["full"][f]):
            a, b = cpu["full"][f], cpu.get("quick", {}).get(f, float("nan"))
            total["full"] += a
            total["quick"] += b
            print(f"| {Path(f).name} | {a:.0f} | {b:.0f} | {b / a:.2f}x |")
        print(f"| all | {total['full']:.0f} | {total['quick']:.0f} | {total['quick'] / total['full']:.2f}x |")
        return max(code for _out, code in outputs.values())


if __name__ == "__main__":
    sys.exit(main())
