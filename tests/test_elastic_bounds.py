"""`plan` knows what the provider can hold of an elastic node: a policy whose
max_instances the chosen provider cannot hold is a located warning naming how
many fit (an error with --strict), from the provider's own preflight; a fixed
count it cannot hold stays refused. The real command line on the local
provider, whose cores are set so that 8 are allowed on any machine."""

from __future__ import annotations

import os

import pytest
import yaml
from support.livecluster import Dodas, need_java
from support.spark import ELASTIC


@pytest.fixture()
def d(tmp_path):
    need_java()  # the local provider's preflight wants Java for Spark
    dodas = Dodas(tmp_path / "home")
    f = dodas.home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump({"providers": [{"name": "local", "type": "local", "rank": 1,
                                                "cpu_allocation_ratio": 8 / len(os.sched_getaffinity(0))}]}))
    return dodas


def test_a_max_the_provider_cannot_hold_is_a_located_warning(d):
    # 1 core for the master, 3 per worker, 8 allowed: 2 workers fit, 40 do not
    r = d.run("plan", ELASTIC, "-i", "worker_cpus=3", "-i", "max_workers=40")
    lines = [x for x in r.stderr.splitlines() if "max_instances" in x]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{ELASTIC}:") and ": warning: policy elastic_workers: max_instances 40" in lines[0]
    assert "provider local can hold: 2 fit" in lines[0] and "at most 8" in lines[0], lines[0]
    strict = d.run("plan", ELASTIC, "-i", "worker_cpus=3", "-i", "max_workers=40", "--strict", check=False)
    assert strict.returncode == 1 and "can hold: 2 fit" in strict.stderr and "Traceback" not in strict.stderr
    # a max that fits: no word; a fixed count that does not fit: refused, as before
    assert "max_instances" not in d.run("plan", ELASTIC, "-i", "worker_cpus=3", "-i", "max_workers=2").stderr
    fixed = d.run("plan", ELASTIC, "-i", "worker_cpus=3", "-i", "number_of_workers=3", check=False)
    assert fixed.returncode == 1 and "cannot deploy on provider local" in fixed.stderr, fixed.stderr
