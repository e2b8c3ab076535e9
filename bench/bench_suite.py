"""Benchmark: the test suite's wall time on a fresh clone, a revision against a
baseline revision, in one run, and the slowest tests.

Each revision is cloned into a new directory and its own CI command runs there
(`bash .ci/run`: `CI=true python3 make.py test -q`, the virtual environment made
and installed from nothing, then ruff, then pytest). The wall time of the whole
command and of pytest alone (pytest's JUnit report) are printed, with the 20
slowest tests of each run (setup, call and teardown added up). The runs are
sequential: two suites at once would each measure the other.

    python3 bench/bench_suite.py                       # HEAD only
    python3 bench/bench_suite.py --baseline REV        # REV, then HEAD
    python3 bench/bench_suite.py --load                # HEAD, with every core kept busy meanwhile

`--cpu` also has each test file's CPU measured by the kernel (tests/support/cpu_account.py:
every process the file started, daemons included) and prints the files by CPU, with any
process a file left running.

`--load` keeps every core busy with a spinning process of the lowest priority
during the run (what `stress-ng --cpu 0` does), to show the suite passes on a busy
machine; its time then says nothing of speed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _spin() -> None:
    os.nice(19)
    while True:
        pass


def run_suite(rev: str, work: Path, load: bool, cpu: bool = False) -> dict:
    clone = work / f"clone-{rev.replace('/', '_')}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=clone, check=True)
    log = work / f"junit-{rev.replace('/', '_')}.xml"  # pytest's own report: any revision writes it
    env = {**os.environ, "CI": "true", "PYTEST_ADDOPTS": f"--junitxml={log}"}
    accounts = work / f"cpu-{rev.replace('/', '_')}.jsonl"
    if cpu:
        env["DODAS_TEST_CPU"] = str(accounts)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)] if load else []
    for s in spinners:
        s.start()
    t0 = time.monotonic()
    try:
        code = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
    finally:
        for s in spinners:
            s.kill()
    whole = time.monotonic() - t0
    tests = ET.parse(log).getroot().iter("testcase") if log.exists() else iter(())
    spent, outcomes = {}, Counter()
    for case in tests:  # junit's time: setup, call and teardown together
        spent[f"{case.get('classname')}::{case.get('name')}"] = float(case.get("time") or 0)
        outcomes[next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")] += 1
    suite = ET.parse(log).getroot().find("testsuite") if log.exists() else None
    return {"rev": rev, "exit": code, "whole_s": round(whole),
            "pytest_s": round(float(suite.get("time"))) if suite is not None else None,
            "outcomes": dict(outcomes), "slowest": sorted(spent.items(), key=lambda kv: -kv[1])[:20],
            "cpu": _cpu_table(accounts)}


def _cpu_table(accounts: Path) -> list[dict]:
    if not accounts.exists():
        return []
    rows = [json.loads(line) for line in accounts.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: -r["cpu_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--baseline", help="a revision to run first, for comparison")
    ap.add_argument("--load", action="store_true", help="keep every core busy meanwhile")
    ap.add_argument("--cpu", action="store_true", help="each test file's CPU, from the kernel")
    ap.add_argument("--keep", action="store_true", help="keep the clones (in the printed directory)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dodas-bench-suite-"))
    results = [run_suite(rev, work, a.load, a.cpu) for rev in ([a.baseline] if a.baseline else []) + [a.rev]]
    for r in results:
        print(f"{r['rev']}: exit {r['exit']}, whole {r['whole_s']} s, pytest {r['pytest_s']} s, {r['outcomes']}")
        for nodeid, seconds in r["slowest"]:
            print(f"  {seconds:7.1f} s  {nodeid}")
        if r["cpu"]:
            total = sum(row["cpu_s"] for row in r["cpu"])
            print(f"CPU of the test files: {total:.0f} s in all; the files by CPU:")
            for row in r["cpu"]:
                left = f"   LEFT RUNNING: {', '.join(row['left'])}" if row["left"] else ""
                print(f"  {row['cpu_s']:8.1f} s  {row['file']}{left}")
    if not a.keep:
        subprocess.run(["rm", "-rf", str(work)])
    else:
        print(f"clones and report logs in {work}")
    sys.exit(max(r["exit"] for r in results))


if __name__ == "__main__":
    main()
