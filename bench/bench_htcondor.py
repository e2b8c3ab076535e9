"""Benchmark: an HTCondor pool on the local provider (issue 32, Speed), in one run on this machine.

(1) `dodas up templates/htcondor.yaml -p local` to verified-ready (every startd in
    the collector and a probe job run, its output back) beside
    bench/manual_htcondor.sh, which starts the same daemons by hand (a central
    manager, a schedd and two single-core startds, each its own condor_master on
    a loopback address, the same security, the same probe); each from a clean
    start, median of --repeat runs (target: ratio <= 1.5).
(2) Jobs' throughput: --jobs one-second jobs submitted at once with condor_submit
    to each pool's schedd, timed until condor_wait says all are done; jobs per
    second, median of --rounds rounds (target: dodas's pool >= 0.9x the hand-started one).

HTCondor is the host's, or the Debian 13 root `dodas htcondor-root` prepared (as root).

    .venv/bin/python bench/bench_htcondor.py --repeat 3 --jobs 40 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = str(ROOT / "templates" / "htcondor.yaml")
MANUAL = str(ROOT / "bench" / "manual_htcondor.sh")
INPUTS = ["-i", "number_of_workers=2", "-i", "worker_cpus=1", "-i", "worker_mem=1 GiB", "-i", "master_cpus=1",
          "-i", "master_mem=1 GiB"]
DODAS = [sys.executable, "-m", "dodas"]


def environment() -> tuple[dict[str, str], list[str]]:
    """The environment both pools run with, and the prefix that runs an HTCondor program."""
    sys.path.insert(0, str(ROOT / "src"))
    from dodas.providers import htcondor_root

    env = dict(os.environ)
    if not htcondor_root.installed():
        root = htcondor_root.prepared()
        if root is None or os.geteuid() != 0:
            sys.exit("HTCondor is not installed and no Debian 13 root is prepared (as root: dodas htcondor-root)")
        env["DODAS_HTCONDOR_ROOT"] = env["HTCONDOR_ROOT"] = str(root)
    return env, htcondor_root.prefix() or []


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def jobs(prefix: list[str], config: Path, n: int) -> float:
    """n one-second jobs through the schedd of `config`: jobs per second from submission to the last done."""
    d = Path(tempfile.mkdtemp(prefix="bench-htcondor-jobs-"))
    try:
        d.chmod(0o777)   # root's jobs run as nobody
        (d / "sub").write_text("executable = /bin/sleep\narguments = 1\ntransfer_executable = false\n"
                               f"should_transfer_files = YES\nlog = {d}/log\nrequest_cpus = 1\nrequest_memory = 32\n"
                               f"queue {n}\n")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONDOR_CONFIG": str(config)}
        t0 = time.perf_counter()
        subprocess.run([*prefix, "condor_submit", str(d / "sub")], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*prefix, "condor_wait", "-wait", "3600", str(d / "log")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    env, prefix = environment()
    start: dict[str, list[float]] = {"manual": [], "up": []}
    rate: dict[str, list[float]] = {"manual": [], "up": []}
    loads = [load()]
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                start["manual"].append(timed([MANUAL, tmp], env))
                if i == 0:
                    rate["manual"] = [jobs(prefix, Path(tmp) / "schedd" / "condor_config", args.jobs)
                                      for _ in range(args.rounds)]
            finally:
                subprocess.run([MANUAL, tmp, "stop"], env=env, check=False)
        loads.append(load())
        with tempfile.TemporaryDirectory() as home:
            denv = {**env, "DODAS_HOME": home}
            try:
                start["up"].append(timed([*DODAS, "up", TEMPLATE, "-p", "local", "--name", "b", "-q", "--yes",
                                          *INPUTS], denv))
                if i == 0:
                    (config,) = Path(home, "data", "local").glob("*/*/schedd/condor/condor_config")
                    rate["up"] = [jobs(prefix, config, args.jobs) for _ in range(args.rounds)]
            finally:
                subprocess.run([*DODAS, "destroy", "b", "--yes", "-q"], env=denv, check=False)
        loads.append(load())
    m, u = statistics.median(start["manual"]), statistics.median(start["up"])
    print(f"to the first probe job done, median of {args.repeat}: by hand {m:.1f} s "
          f"({', '.join(f'{x:.1f}' for x in start['manual'])}), dodas up {u:.1f} s "
          f"({', '.join(f'{x:.1f}' for x in start['up'])}): ratio {u / m:.2f} (target <= 1.5)")
    rm, ru = statistics.median(rate["manual"]), statistics.median(rate["up"])
    print(f"throughput, {args.jobs} one-second jobs, median of {args.rounds}: by hand {rm:.2f} jobs/s "
          f"({', '.join(f'{x:.2f}' for x in rate['manual'])}), dodas {ru:.2f} jobs/s "
          f"({', '.join(f'{x:.2f}' for x in rate['up'])}): ratio {ru / rm:.2f} (target >= 0.9)")
    print(f"load average (1/5/15 min) before and after each run: {' '.join(loads)}")


if __name__ == "__main__":
    main()
