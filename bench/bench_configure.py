"""Benchmark: configuring 20 hosts with one task each, `dodas up` against one
plain `ansible-playbook` run over the same inventory, in one run.

The hosts are 20 machines of the local provider (work directories on this
machine, Ansible's local connection); the template is one compute node of count
20 and one software node whose `start` is a one-task playbook. (a) is `dodas up`
of it from nothing (planning, the 20 machines, the Ansible run, the state), (b)
`ansible-playbook -f 10` of the same task over an inventory of 20 local hosts.
The two alternate, a deployment is destroyed (untimed) after each (a); medians.

    .venv/bin/python bench/bench_configure.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
HOSTS = 20


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def workspace(d: Path) -> tuple[Path, Path, Path]:
    task = d / "task.yml"
    task.write_text(textwrap.dedent("""\
        - hosts: "{{ dodas_target | default('box') }}"
          gather_facts: false
          tasks:
            - name: One task
              ansible.builtin.command: "true"
              changed_when: false
        """))
    template = d / "t.yaml"
    template.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.Task:
            derived_from: tosca.nodes.SoftwareComponent
            interfaces:
              Standard:
                start: {{implementation: task.yml}}
        topology_template:
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {{properties: {{count: {HOSTS}}}}}
                host: {{properties: {{num_cpus: 1, mem_size: 64 MB}}}}
            task:
              type: my.nodes.Task
              requirements: [{{host: box}}]
        """))
    hosts = {f"box-{i}": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
             for i in range(HOSTS)}
    inventory = d / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"box": {"hosts": hosts}}}}))
    return template, task, inventory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        template, task, inventory = workspace(d)
        env = {**os.environ, "DODAS_HOME": str(d / "home"), "ANSIBLE_NOCOLOR": "1"}
        dodas = [str(BIN / "dodas")]
        up = [*dodas, "up", str(template), "--name", "bench", "--overcommit", "--yes", "-q"]
        plain = [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", "10", str(task)]
        timed(plain, env)  # warm the file cache for both
        a, b = [], []
        for _ in range(args.repeat):
            a.append(timed(up, env))
            subprocess.run([*dodas, "destroy", "bench", "--yes", "-q"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            b.append(timed(plain, env))
        ma, mb = statistics.median(a), statistics.median(b)
        ratios = statistics.median(x / y for x, y in zip(a, b))
        print(f"{HOSTS} hosts, one task each; medians of {args.repeat}")
        print(f"  (a) dodas up             {ma:6.2f} s")
        print(f"  (b) ansible-playbook     {mb:6.2f} s")
        print(f"  ratio a/b (pairwise median) {ratios:.2f}   target <= 1.05")


if __name__ == "__main__":
    main()
