"""Benchmark: the engine on the simulated provider (no machine is made).

(a) Overhead: N compute instances with zero latency: everything the engine does
    per instance (state rows, events, the walk) is all there is to time.
(b) Parallelism: N instances whose create takes L seconds, at most P at a time;
    the ideal is ceil(N/P) * L. Reported: the engine's walk time and its excess
    over the ideal.

    .venv/bin/python bench/bench_engine.py
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import textwrap
import time
from pathlib import Path


def template(dir_: Path, n: int) -> str:
    t = dir_ / f"n{n}.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {n}}}}}
                host: {{properties: {{num_cpus: 2, mem_size: 4 GB}}}}
        """))
    return str(t)


def run(n: int, latency: float, parallelism: int) -> tuple[float, float]:
    """(seconds in engine.up, seconds for the whole `up`), on a fresh DODAS_HOME."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["DODAS_HOME"] = home
        cfg = Path(home) / "config" / "providers.yaml"
        cfg.parent.mkdir(parents=True)
        cfg.write_text(f"providers:\n  - {{name: sim, type: simulated, rank: 1, create_latency: {latency}}}\n")
        from dodas.cli.progress import factory
        from dodas.engine import engine as engine_mod
        from dodas.services import deploy

        walk: list[float] = []
        original = engine_mod.Engine.up

        async def timed_up(self):
            t0 = time.perf_counter()
            try:
                return await original(self)
            finally:
                walk.append(time.perf_counter() - t0)

        engine_mod.Engine.up = timed_up
        try:
            t0 = time.perf_counter()
            deploy.up(template(Path(home), n), name="b", pairs=None, inputs_file=None, provider_name="sim",
                      parallelism=parallelism, listener=factory(quiet=True))
            total = time.perf_counter() - t0
        finally:
            engine_mod.Engine.up = original
        return walk[0], total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    args = ap.parse_args()
    print("(a) engine overhead, zero latency")
    for n in ([100] if args.quick else [100, 1000]):
        walk, total = run(n, 0.0, 10)
        print(f"  {n:>5} instances: walk {walk:.2f}s ({walk / n * 1000:.2f} ms/instance), whole up {total:.2f}s")
    print("(b) parallelism: N instances, create latency L, parallelism P")
    cases = [(20, 0.5, 5), (100, 0.2, 10)] if args.quick else [(20, 0.5, 5), (100, 0.2, 10), (200, 0.5, 20),
                                                                  (1000, 0.1, 50)]
    for n, lat, p in cases:
        walk, total = run(n, lat, p)
        ideal = math.ceil(n / p) * lat
        print(f"  N={n:<5} L={lat:<4} P={p:<3} ideal {ideal:5.2f}s  walk {walk:5.2f}s  "
              f"excess {100 * (walk / ideal - 1):+5.1f}%  (whole up {total:.2f}s)")


if __name__ == "__main__":
    main()
