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

`--load` keeps every core busy with a spinning process of the lowest priority
during the run (what `stress-ng --cpu 0` does), to show the suite passes on a busy
machine; its time then says nothing of speed.
"""

from __future__ import annotations

import argparse
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


def run_suite(rev: str, work: Path, load: bool) -> dict:
    clone = work / f"clone-{rev.replace('/', '_')}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=clone, check=True)
    log = work / f"junit-{rev.replace('/', '_')}.xml"  # pytest's own report: any revision writes it
    env = {**os.environ, "CI": "true", "PYTEST_ADDOPTS": f"--junitxml={log}"}
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
            "outcomes": dict(outcomes), "slowest": sorted(spent.items(), key=lambda kv: -kv[1])[:20]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--baseline", help="a revision to run first, for comparison")
    ap.add_argument("--load", action="store_true", help="keep every core busy meanwhile")
    ap.add_argument("--keep", action="store_true", help="keep the clones (in the printed directory)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dodas-bench-suite-"))
    results = [run_suite(rev, work, a.load) for rev in ([a.baseline] if a.baseline else []) + [a.rev]]
    for r in results:
        print(f"{r['rev']}: exit {r['exit']}, whole {r['whole_s']} s, pytest {r['pytest_s']} s, {r['outcomes']}")
        for nodeid, seconds in r["slowest"]:
            print(f"  {seconds:7.1f} s  {nodeid}")
    if not a.keep:
        subprocess.run(["rm", "-rf", str(work)])
    else:
        print(f"clones and report logs in {work}")
    sys.exit(max(r["exit"] for r in results))


if __name__ == "__main__":
    main()
