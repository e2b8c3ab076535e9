"""The read-only commands' path (state/reads.py, services/outputsframe.py): the
same answers as planning the stored template, on SQLite and PostgreSQL; nothing
made on a fresh home; no secret written beside the state."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from support.livecluster import Dodas, compute_template


def _simulated(d: Dodas) -> None:
    (d.home / "config").mkdir(parents=True, exist_ok=True)
    (d.home / "config" / "providers.yaml").write_text("providers:\n  - {name: sim, type: simulated, rank: 1}\n")


def _frames(d: Dodas) -> list[Path]:
    return sorted(d.home.glob("data/deployments/*/outputs-frame.json"))


def test_outputs_from_the_frame_are_those_of_a_new_plan(tmp_path, state_db):
    """`up` keeps the outputs' frame; `outputs` read through it answers as when the
    stored template is planned again (the frame removed), and a changed input
    (a new key) is planned again, not answered from the old frame."""
    d = Dodas(tmp_path / "home")
    state_db.env(d.env)
    _simulated(d)
    t = compute_template(tmp_path / "boxes.yaml", count=2, cpus=1, mem="1 GB", address_output="public_address")
    d.run("up", t, "--name", "boxes", "--provider", "sim", "--quiet")
    assert len(_frames(d)) == 1
    framed = d.json("outputs", "boxes")
    assert len(framed["addresses"]["value"]) == 2 and framed["addresses"]["known"]
    _frames(d)[0].unlink()
    assert d.json("outputs", "boxes") == framed  # planned again: the same answer, and the frame kept again
    assert len(_frames(d)) == 1
    d.run("up", t, "--name", "boxes", "--provider", "sim", "--quiet", "-i", "n=3", "--yes")
    assert len(d.json("outputs", "boxes")["addresses"]["value"]) == 3
    status = d.json("status", "boxes")
    assert [i["id"] for i in status["instances"]] == ["box[0]", "box[1]", "box[2]"]
    assert status["attempts"][-1]["status"] == "succeeded" and status["elastic"] is None


def test_a_read_on_a_fresh_home_makes_nothing(tmp_path):
    d = Dodas(tmp_path / "home")
    assert json.loads(d.run("list", "--json").stdout) == []
    for args in (["status", "nothing"], ["outputs", "nothing"]):
        r = d.run(*args, check=False)
        assert r.returncode == 4 and 'no deployment named "nothing"' in r.stderr, r.stderr
    assert not d.home.exists() or not any(d.home.rglob("*"))


@pytest.mark.parametrize("given, output", [("admin_password", "copy"), ("plain", "password")])
def test_no_frame_holds_a_secret(tmp_path, given, output):
    """An output that gives a secret input's value, or a sensitive output (by its
    name) of a value known at plan time, keeps its deployment's outputs planned at each read: no file beside
    the state holds the secret, and the answer is the same."""
    d = Dodas(tmp_path / "home")
    _simulated(d)
    t = tmp_path / "secret.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          inputs:
            {given}: {{type: string}}
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                host: {{properties: {{num_cpus: 1, mem_size: 1 GB}}}}
          outputs:
            {output}: {{value: {{get_input: {given}}}}}
            address: {{value: {{get_attribute: [box, public_address]}}}}
        """))
    d.run("up", str(t), "--name", "s", "--provider", "sim", "--quiet", "-i", f"{given}=very-secret-value-1")
    assert _frames(d) == []
    outs = d.json("outputs", "s", "--show-secrets")
    assert outs[output]["value"] == "very-secret-value-1" and outs["address"]["known"]
    assert not [p for p in d.home.rglob("*") if p.is_file() and not p.name.startswith("state.db")
                and b"very-secret-value-1" in p.read_bytes()]
