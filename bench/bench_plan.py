"""Benchmark: `dodas validate`+`plan` against tosca-parser's parse alone.

Generates templates of N compute nodes, each hosting a Spark worker that connects
to one Spark master and reads an address with get_attribute, and times in one run:

  * tosca-parser alone: ToscaTemplate(path) on the file (the reference);
  * dodas: services.plan(path), which loads, validates (tosca-parser included),
    builds the model and plans the waves: everything `dodas validate` and
    `dodas plan` do before printing.

Each figure is the best of --repeat runs in this process after one warm-up.
Also times `dodas --help` as a fresh process (the start-up budget).

    .venv/bin/python bench/bench_plan.py --sizes 100 1000
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


def make_template(n: int) -> str:
    lines = [
        "tosca_definitions_version: tosca_simple_yaml_1_0",
        "imports:",
        "  - indigo: https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml",
        "topology_template:",
        "  inputs:",
        "    cpus: {type: integer, default: 2}",
        "  node_templates:",
        "    master_host:",
        "      type: tosca.nodes.indigo.Compute",
        "      capabilities:",
        "        host: {properties: {num_cpus: {get_input: cpus}, mem_size: 4 GB}}",
        "    spark_master:",
        "      type: tosca.nodes.dodas.Spark.Master",
        "      requirements: [{host: master_host}]",
    ]
    for i in range(n - 1):
        lines += [
            f"    host_{i}:",
            "      type: tosca.nodes.indigo.Compute",
            "      capabilities:",
            "        endpoint: {properties: {network_name: PRIVATE, ports: {ssh: {protocol: tcp, source: 22}}}}",
            "        host: {properties: {num_cpus: {get_input: cpus}, mem_size: 2 GB}}",
            "        os: {properties: {image: ubuntu-22.04}}",
            f"    worker_{i}:",
            "      type: tosca.nodes.dodas.Spark.Worker",
            "      properties: {cores: {get_property: [HOST, host, num_cpus]}}",
            f"      requirements: [{{host: host_{i}}}, {{master: spark_master}}]",
        ]
    lines += ["  outputs:",
              "    master: {value: {concat: ['spark://', {get_attribute: [master_host, public_address, 0]}]}}"]
    return "\n".join(lines) + "\n"


def best(fn, repeat: int) -> float:
    fn()  # warm-up: imports, type library caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def tosca_parser_alone(path: str):
    from toscaparser.tosca_template import ToscaTemplate

    from dodas import paths
    url = "https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml"
    return lambda: ToscaTemplate(path, local_defs={url: str(paths.TYPE_LIBRARY)})


def dodas_plan(path: str):
    from dodas import services
    return lambda: services.plan(path, offline=True)


def help_time(repeat: int) -> tuple[float, float]:
    exe = Path(sys.executable).parent / "dodas"
    times = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    times = times[1:]
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("DODAS_HOME", tempfile.mkdtemp(prefix="dodas-bench-"))
    print(f"{'nodes':>6} {'tosca-parser':>13} {'dodas plan':>11} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = os.path.join(tmp, f"t{n}.yaml")
            Path(path).write_text(make_template(n))
            ref = best(tosca_parser_alone(path), args.repeat)
            ours = best(dodas_plan(path), args.repeat)
            print(f"{n:>6} {ref:>12.3f}s {ours:>10.3f}s {ours / ref:>6.2f}")
    lo, med = help_time(5)
    print(f"dodas --help: best {lo:.3f}s, median {med:.3f}s")


if __name__ == "__main__":
    main()
