"""As lenient as the INDIGO orchestrator, and saying so (issue 26, items 4 and 5).

Item 4: an integer where a float is declared is valid, silently; a scalar of
another YAML type where a string is declared, and a number written as a string
where a number is, is read as its declared type with a warning located at the
value (file:line:col, node, property); `--strict` refuses those warnings (exit 1);
a value no reading fits is an error at its line, never at 1:1.

Item 5: what plan and up refuse for safety (a playbook from elsewhere, a
well-known Helm repository the template does not declare) is a warning in
validate that names the flag or declaration they will need; plan refuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.located import located

HEAD = "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n"

#: a Docker runtime's capability declares num_cpus a float, num_gpus an integer; the
#: application's command is a string, its environment a map of strings
DOCKER = HEAD + """\
  node_templates:
    runtime:
      type: tosca.nodes.indigo.Container.Runtime.Docker
      capabilities:
        host:
          properties:
            num_cpus: {cpus}
            num_gpus: {gpus}
    app:
      type: tosca.nodes.indigo.Container.Application.Docker
      properties:
        command: {command}
        environment_variables:
          DEBUG: {debug}
      requirements:
        - host: runtime
"""


def write(tmp_path: Path, text: str) -> Path:
    t = tmp_path / "t.yaml"
    t.write_text(text)
    return t


def line_of(path: Path, needle: str) -> int:
    text = path.read_text()
    return text.count("\n", 0, text.index(needle)) + 1


def warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ": warning: " in ln]


def docker(tmp_path: Path, cpus: str = "0.5", gpus: str = "1", command: str = "run.sh", debug: str = '"yes"'):
    return write(tmp_path, DOCKER.format(cpus=cpus, gpus=gpus, command=command, debug=debug))


def test_an_integer_where_a_float_is_declared_is_simply_valid(cli, tmp_path):
    t = docker(tmp_path, cpus="1")
    r = cli("validate", str(t), "--strict")
    assert r.code == 0 and warnings(r.err) == [], r.err
    assert cli("validate", str(docker(tmp_path, cpus="true"))).code == 1, "a boolean is no float"


CASES = [
    # (what, field and value, the line's needle, column, the message's start, read as)
    ("a number where a string is", dict(command="42"), "command: 42", 18,
     'node "app" property "command": 42 is a number where a string is expected: read as "42"'),
    ("a version-like number keeps its digits", dict(command="1.10"), "command: 1.10", 18,
     'node "app" property "command": 1.10 is a number where a string is expected: read as "1.10"'),
    ("a boolean where a string is", dict(debug="true"), "DEBUG: true", 18,
     'node "app" property "environment_variables" entry [DEBUG]: true is a boolean where a string is expected: '
     'read as "true"'),
    ("a string where an integer is", dict(gpus='"3"'), 'num_gpus: "3"', 23,
     'node "runtime" capability "host" property "num_gpus": "3" is a string where an integer is expected: '
     "read as 3"),
    ("a string where a float is", dict(cpus='"0.5"'), 'num_cpus: "0.5"', 23,
     'node "runtime" capability "host" property "num_cpus": "0.5" is a string where a float is expected: '
     "read as 0.5"),
]


@pytest.mark.parametrize("what,values,needle,col,says", CASES, ids=[c[0] for c in CASES])
def test_another_scalar_is_read_as_its_type_with_a_located_warning(cli, tmp_path, what, values, needle, col, says):
    t = docker(tmp_path, **values)
    r = cli("validate", str(t))
    assert r.code == 0, r.err
    (w,) = warnings(r.err)
    assert w.startswith(f"{t}:{line_of(t, needle)}:{col}: warning: {says}, as the INDIGO orchestrator reads it"), w
    r = cli("validate", str(t), "--strict")  # exit 1: an invalid template (README, exit codes)
    ((_f, line, c, msg),) = located(r.code, r.out, r.err, t)
    assert (line, c) == (line_of(t, needle), col) and msg.startswith(says)


def test_the_model_reads_the_value_as_its_type(cli, tmp_path):
    t = docker(tmp_path, command="42", debug="true", gpus='"3"')
    from dodas import services

    model = services.validate(str(t)).model  # validate: plan refuses these nodes, which dodas only knows
    assert model.nodes["app"].properties["command"] == "42"
    assert model.nodes["app"].properties["environment_variables"] == {"DEBUG": "true"}
    assert len(model.warnings) == 3


def test_a_string_input_with_a_boolean_default_and_a_count_written_as_a_string(cli, tmp_path):
    """INDIGO's templates: `type: string, default: true` (tosca-parser placed it at 1:1), `count: "2"`."""
    t = write(tmp_path, HEAD + """\
  inputs:
    enable_gpu:
      type: string
      default: true
  node_templates:
    vm:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable:
          properties:
            count: "2"
""")
    r = cli("plan", str(t), "--json", "--no-refresh")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert plan["inputs"] == {"enable_gpu": "true"}
    assert [n["instances"] for n in plan["nodes"]] == [2]
    r = cli("validate", str(t))
    lines = {int(w.split(":")[1]) for w in warnings(r.err)}
    assert lines == {line_of(t, "default: true"), line_of(t, 'count: "2"')}, r.err
    assert 'input "enable_gpu": true is a boolean where a string is expected: read as "true"' in r.err
    r = cli("plan", str(t), "--strict", "--no-refresh")
    assert sorted(line for _f, line, _c, _m in located(*_r(r), t)) == sorted(lines)


def test_a_secret_is_never_quoted(cli, tmp_path):
    t = write(tmp_path, HEAD + """\
  inputs:
    admin_password:
      type: string
      default: 123456
  node_templates:
    vm: {type: tosca.nodes.indigo.Compute}
""")
    r = cli("validate", str(t))
    assert r.code == 0 and "123456" not in r.err, r.err
    (w,) = warnings(r.err)
    assert f":{line_of(t, 'default: 123456')}:" in w and "its value is not shown" in w


@pytest.mark.parametrize("values,needle,says", [
    (dict(gpus="three"), "num_gpus: three", 'property "num_gpus": must be an integer, got "three"'),
    (dict(cpus="fast"), "num_cpus: fast", 'property "num_cpus": must be a float, got "fast"'),
    (dict(command="[a, b]"), "command: [a, b]", 'property "command": must be a string, got a list'),
], ids=["integer", "float", "string"])
def test_a_value_no_reading_fits_is_an_error_at_its_line(cli, tmp_path, values, needle, says):
    t = docker(tmp_path, **values)
    ((_f, line, _c, msg),) = located(*_r(cli("validate", str(t))), t)
    assert line == line_of(t, needle) and says in msg, msg


def test_an_input_default_no_reading_fits_is_at_its_line_not_1_1(cli, tmp_path):
    t = write(tmp_path, HEAD + "  inputs:\n    n:\n      type: integer\n      default: many\n"
                               "  node_templates:\n    vm: {type: tosca.nodes.indigo.Compute}\n")
    ((_f, line, col, msg),) = located(*_r(cli("validate", str(t))), t)
    assert (line, col) == (line_of(t, "default: many"), 16) and msg == 'input "n": must be an integer, got "many"'


def _r(r):
    return r.code, r.out, r.err


# -- item 5: validate reports, plan refuses ------------------------------------------------------------------
HELM = HEAD + """\
  node_templates:
    release:
      type: tosca.nodes.indigo.HelmInstall
      properties:
        name: grafana
        chart: {chart}
"""


def test_an_undeclared_well_known_helm_repository_warns_in_validate_and_plan_refuses(cli, tmp_path):
    t = write(tmp_path, HELM.format(chart="stable/grafana"))
    needed = "add to its properties repos: [{name: stable, url: https://charts.helm.sh/stable}]"
    r = cli("validate", str(t))
    assert r.code == 0, r.err
    (w,) = warnings(r.err)
    assert w.startswith(f"{t}:{line_of(t, 'chart:')}:16: warning: ") and needed in w, w
    assert "dodas plan and up refuse this" in w
    for command in (("plan", str(t)), ("validate", str(t), "--strict")):
        ((_f, line, _c, msg),) = located(*_r(cli(*command)), t)
        assert line == line_of(t, "chart:") and needed in msg and 'repository "stable"' in msg
    declared = write(tmp_path, HELM.format(chart="stable/grafana") + "        repos:\n"
                                                                     "          - {name: stable, url: https://charts.helm.sh/stable}\n")
    r = cli("validate", str(declared), "--strict")
    assert r.code == 0, r.err


def test_an_undeclared_repository_nobody_knows_stays_an_error(cli, tmp_path):
    t = write(tmp_path, HELM.format(chart="myrepo/grafana"))
    ((_f, line, _c, msg),) = located(*_r(cli("validate", str(t))), t)
    assert line == line_of(t, "chart:") and msg.endswith('repository "myrepo", which its repos do not declare')


def test_an_inputs_file_is_read_as_leniently_with_warnings_at_its_lines(cli, tmp_path):
    t = write(tmp_path, HEAD + """\
  inputs:
    release: {type: string}
    workers: {type: integer}
    ratio: {type: float}
    db_password: {type: string}
  node_templates:
    vm: {type: tosca.nodes.indigo.Compute}
""")
    f = tmp_path / "in.yaml"
    f.write_text('release: 1.10\nworkers: "3"\nratio: 2\ndb_password: 31415926\n')
    r = cli("plan", str(t), "--inputs", str(f), "--json", "--no-refresh")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert {k: plan["inputs"][k] for k in ("release", "workers", "ratio")} == {"release": "1.10", "workers": 3,
                                                                            "ratio": 2.0}
    assert plan["warnings"] == [
        f'{f}:1:10: input "release": 1.10 is a number where a string is expected: read as "1.10", as the INDIGO '
        "orchestrator reads it (--strict refuses this)",
        f'{f}:2:10: input "workers": "3" is a string where an integer is expected: read as 3, as the INDIGO '
        "orchestrator reads it (--strict refuses this)",
        f'{f}:4:14: input "db_password": a number (its value is not shown: a secret) where a string is expected: '
        "read as one, as the INDIGO orchestrator reads it (--strict refuses this)"]
    assert "31415926" not in r.out + r.err
    r = cli("plan", str(t), "--inputs", str(f), "--strict", "--no-refresh")
    assert [line for _f, line, _c, _m in located(*_r(r), str(f))] == [1, 2, 4]
