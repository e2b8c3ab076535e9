"""Benchmark: the fixed cost of a command against xOpera 0.7 (`opera`), in one run.

(a) Reads: `dodas list`, `dodas status NAME` and `dodas outputs NAME` of an
    existing deployment (N instances made on the simulated provider), each
    against `opera --version` (the least an `opera` command costs).
(b) `dodas up` of N zero-latency instances on the simulated provider (one
    scalable compute node, `count: N`; `--shape nodes`: N compute nodes) against
    `opera deploy` of a TOSCA 1.3 service template of N `tosca.nodes.Compute`
    nodes without operations (what opera does for a node with nothing to run).
    Each dodas run is a new deployment in one state (made and migrated before
    timing, as on a machine that has used dodas before); each opera run a fresh
    instance directory (`--clean-state`), 10 workers as dodas's parallelism.
(c) `dodas destroy` of N instances (made by an untimed `up` before each run)
    against `opera undeploy` of N nodes (deployed, untimed, before each run).
(d) `dodas validate` of N compute nodes (`--shape nodes` whatever --shape says:
    validation works per node template) against `opera validate` of N nodes.
(e) `dodas validate` of each template of the catalogue (templates/), alone:
    the target is an absolute one, under 0.3 s each.

Every command is a fresh process; the two sides alternate (A B A B ...) after a
warm-up; medians of wall time and of CPU time (user + system of the finished
child, from the OS), and the ratio of the medians (dodas / reference).
xOpera lives in its own environment (its pins clash with dodas's):

    python3 -m venv /tmp/opera-venv && /tmp/opera-venv/bin/pip install 'opera==0.7.*'
    .venv/bin/python bench/bench_fixed_costs.py --opera /tmp/opera-venv/bin/opera --repeat 11
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


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[float, float]:
    """(wall, cpu) seconds of one process; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def dodas_template(path: Path, n: int, shape: str) -> str:
    if shape == "count":
        nodes = (f"    box:\n      type: tosca.nodes.indigo.Compute\n      capabilities:\n"
                 f"        scalable: {{properties: {{count: {n}}}}}\n"
                 f"        host: {{properties: {{num_cpus: 1, mem_size: 1 GB}}}}\n")
        first = "box"
    else:
        nodes = "".join(f"    box{i}:\n      type: tosca.nodes.indigo.Compute\n      capabilities:\n"
                        f"        host: {{properties: {{num_cpus: 1, mem_size: 1 GB}}}}\n" for i in range(n))
        first = "box0"
    outputs = f"  outputs:\n    first_address: {{value: {{get_attribute: [{first}, public_address]}}}}\n"
    path.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n"
                    + nodes + outputs)
    return str(path)


def opera_template(path: Path, n: int) -> str:
    nodes = "".join(f"    box{i}:\n      type: tosca.nodes.Compute\n" for i in range(n))
    path.write_text("tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n"
                    + nodes)
    return str(path)


def compare(label: str, a: callable, b: callable, repeat: int, b_label: str) -> None:
    a(), b()  # warm-up (and the page cache)
    got: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for _ in range(repeat):
        got["A"].append(a())
        got["B"].append(b())
    med = {s: (statistics.median(w for w, _ in got[s]), statistics.median(c for _, c in got[s])) for s in "AB"}
    print(f"{label:<28} wall {med['A'][0]:6.3f} s cpu {med['A'][1]:6.3f} s | {b_label:<22} wall "
          f"{med['B'][0]:6.3f} s cpu {med['B'][1]:6.3f} s | ratio wall {med['A'][0] / med['B'][0]:.2f} "
          f"cpu {med['A'][1] / med['B'][1]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opera", default="/tmp/opera-venv/bin/opera", help="xOpera 0.7's `opera` command")
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 1000], help="instances for (b)")
    ap.add_argument("--shape", choices=["count", "nodes"], default="count")
    ap.add_argument("--read-size", type=int, default=100, help="instances of the deployment (a) reads")
    ap.add_argument("--destroy-size", type=int, default=1000, help="instances for (c)")
    ap.add_argument("--validate-sizes", type=int, nargs="*", default=[100, 1000], help="nodes for (d)")
    ap.add_argument("--only", choices=["reads", "up", "destroy", "validate", "catalogue"], default=None)
    a = ap.parse_args()
    py = [sys.executable, "-m", "dodas"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "config").mkdir(parents=True)
        (home / "config" / "providers.yaml").write_text("providers:\n  - {name: sim, type: simulated, rank: 1}\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DODAS_HOME": str(home)}
        env.pop("DODAS_DB_URL", None)
        env.pop("DODAS_SERVER", None)
        version = [a.opera, "--version"]
        if a.only in (None, "reads"):
            t = dodas_template(Path(tmp) / "reads.yaml", a.read_size, "count")
            timed([*py, "up", t, "--name", "reads", "--provider", "sim", "--quiet"], env)
            print(f"(a) reads of a deployment of {a.read_size} instances, against `opera --version`")
            for args in (["list"], ["status", "reads"], ["outputs", "reads"]):
                compare(f"dodas {' '.join(args)}", lambda args=args: timed([*py, *args], env),
                        lambda: timed(version), a.repeat, "opera --version")
        if a.only in (None, "up"):
            runs = iter(range(10**6))
            print(f"(b) up of N zero-latency instances (simulated, shape {a.shape}), against `opera deploy`")
            for n in a.sizes:
                t = dodas_template(Path(tmp) / f"up{n}.yaml", n, a.shape)
                o = opera_template(Path(tmp) / f"opera{n}.yaml", n)
                work = Path(tmp) / f"opera{n}"
                work.mkdir()
                opera = [a.opera, "deploy", "--clean-state", "--force", "--workers", "10", o]
                compare(f"dodas up, {n}",
                        lambda t=t, n=n: timed([*py, "up", t, "--name", f"u{n}-{next(runs)}", "--provider", "sim",
                                                "--quiet"], env),
                        lambda work=work, opera=opera: timed(opera, cwd=str(work)), a.repeat,
                        f"opera deploy, {n}")
        if a.only in (None, "destroy"):
            n = a.destroy_size
            t = dodas_template(Path(tmp) / f"destroy{n}.yaml", n, a.shape)
            o = opera_template(Path(tmp) / f"opera-destroy{n}.yaml", n)
            work = Path(tmp) / f"opera-destroy{n}"
            work.mkdir()
            runs = iter(range(10**6))

            def dodas_destroy() -> tuple[float, float]:
                name = f"d{n}-{next(runs)}"
                timed([*py, "up", t, "--name", name, "--provider", "sim", "--quiet"], env)
                return timed([*py, "destroy", name, "--yes", "--quiet"], env)

            def opera_undeploy() -> tuple[float, float]:
                timed([a.opera, "deploy", "--clean-state", "--force", "--workers", "10", o], cwd=str(work))
                return timed([a.opera, "undeploy", "--force", "--workers", "10"], cwd=str(work))

            print(f"(c) destroy of {n} zero-latency instances, against `opera undeploy`")
            compare(f"dodas destroy, {n}", dodas_destroy, opera_undeploy, a.repeat, f"opera undeploy, {n}")
        if a.only in (None, "validate"):
            print("(d) validate of N compute nodes, against `opera validate`")
            for n in a.validate_sizes:
                t = dodas_template(Path(tmp) / f"validate{n}.yaml", n, "nodes")
                o = opera_template(Path(tmp) / f"opera-validate{n}.yaml", n)
                compare(f"dodas validate, {n}", lambda t=t: timed([*py, "validate", t], env),
                        lambda o=o: timed([a.opera, "validate", o], cwd=tmp), a.repeat, f"opera validate, {n}")
        if a.only in (None, "catalogue"):
            print("(e) validate of each catalogue template (target: under 0.3 s each)")
            for t in sorted((ROOT / "templates").glob("*.yaml")):
                timed([*py, "validate", str(t)], env)  # warm-up
                got = [timed([*py, "validate", str(t)], env) for _ in range(a.repeat)]
                wall, cpu = statistics.median(w for w, _ in got), statistics.median(c for _, c in got)
                print(f"  {t.name:<34} wall {wall:6.3f} s cpu {cpu:6.3f} s  {'met' if wall < 0.3 else 'missed'}",
                      flush=True)


if __name__ == "__main__":
    main()
