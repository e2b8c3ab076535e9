"""Benchmark: a local XCache (issue 16, Speed), in one run on this machine.

(1) `dodas up templates/xcache.yaml` to verified-ready (a file read through the
    cache has the origin's bytes) beside bench/manual_xcache.sh, which starts
    the same origin and cache by hand (same directives, sss, the same check);
    each from a clean start, median of --repeat runs (target: ratio <= 1.5).
(2) Read throughput of a --size file (default 1 GiB) with xrdcp to /dev/null:
    straight from the origin (with the deployment's key), through the cache on
    a miss (the first read) and on hits (the next ones); median of --reads
    reads (target: a hit no more than 10% slower than the origin).

    .venv/bin/python bench/bench_xcache.py --repeat 3 --reads 5 [--block "4 MiB"] [--reads-only]
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
TEMPLATE = str(ROOT / "templates" / "xcache.yaml")
MANUAL = str(ROOT / "bench" / "manual_xcache.sh")
FAST = {"XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "60"}


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def read(url: str, env: dict[str, str] | None = None) -> float:
    return timed(["xrdcp", "--force", "--nopbar", url, "/dev/null"], {**os.environ, **FAST, **(env or {})})


def startup(repeat: int) -> dict[str, list[float]]:
    dodas = [sys.executable, "-m", "dodas"]
    out: dict[str, list[float]] = {"manual": [], "up": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                out["manual"].append(timed([MANUAL, tmp], dict(os.environ)))
            finally:
                subprocess.run([MANUAL, tmp, "stop"], check=False)
                time.sleep(1)
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "DODAS_HOME": home}
            try:
                out["up"].append(timed([*dodas, "up", TEMPLATE, "--name", "b", "-q", "--yes",
                                        "-i", "cache_port=31794", "-i", "origin_port=31795"], env))
            finally:
                subprocess.run([*dodas, "destroy", "b", "--yes", "-q"], env=env, check=False)
    return out


def throughput(size: int, reads: int, block: str) -> dict[str, list[float]]:
    dodas = [sys.executable, "-m", "dodas"]
    out: dict[str, list[float]] = {"origin": [], "miss": [], "hit": []}
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as data:
        with open(Path(data) / "big.bin", "wb") as fh:
            for _ in range(size // 2**20):
                fh.write(os.urandom(2**20))
        env = {**os.environ, "DODAS_HOME": home}
        try:
            subprocess.run([*dodas, "up", TEMPLATE, "--name", "t", "-q", "--yes", "-i", f"data_dir={data}",
                            "-i", f"cache_size={size * 3 // 2**20} MiB", "-i", "cache_port=31794",
                            "-i", "origin_port=31795", "-i", f"block_size={block}"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            status = subprocess.run([*dodas, "status", "t", "--json"], env=env, capture_output=True, text=True)
            import json
            inst = {i["node"]: i for i in json.loads(status.stdout)["instances"]}
            cache = f"root://{inst['cache_host']['address']}:31794//big.bin"
            origin = f"root://{inst['origin_host']['address']}:31795//big.bin"
            keytab = Path(next(iter(inst["origin"]["services"].values()))["log"]).parent.parent / "xrootd" / \
                "sss.keytab"
            key = {"XrdSecPROTOCOL": "sss", "XrdSecSSSKT": str(keytab)}
            out["miss"].append(read(cache))
            for _ in range(reads):
                out["origin"].append(read(origin, key))
                out["hit"].append(read(cache))
        finally:
            subprocess.run([*dodas, "destroy", "t", "--yes", "-q"], env=env, check=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reads", type=int, default=5)
    ap.add_argument("--size", type=int, default=1024, help="MiB")
    ap.add_argument("--block", default="1 MiB", help="the cache's block_size")
    ap.add_argument("--reads-only", action="store_true", help="skip (1)")
    args = ap.parse_args()
    up = {"manual": [float("nan")], "up": [float("nan")]} if args.reads_only else startup(args.repeat)
    rd = throughput(args.size * 2**20, args.reads, args.block)
    med = {k: statistics.median(v) for k, v in {**up, **rd}.items()}
    mib = args.size
    print(f"runs: {args.repeat} starts, {args.reads} reads of {mib} MiB, block_size {args.block} (median)")
    print(f"(1) by hand (manual_xcache.sh), origin + cache, verified: {med['manual']:.2f} s")
    print(f"    dodas up templates/xcache.yaml, verified:              {med['up']:.2f} s   "
          f"ratio {med['up'] / med['manual']:.1f}")
    for k in ("origin", "miss", "hit"):
        print(f"(2) {k:6}: {med[k]:.2f} s  {mib / med[k]:.0f} MiB/s")
    print(f"    hit vs origin: {(med['hit'] / med['origin'] - 1) * 100:+.1f}% time")
    print("all runs:", {k: [round(x, 2) for x in v] for k, v in {**up, **rd}.items()})


if __name__ == "__main__":
    main()
