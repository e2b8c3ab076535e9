"""The operations dodas offers, as plain functions.

The CLI (and later the server) are thin faces over these: they parse arguments,
call one function, and render its result. No deployment logic lives in a face.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dodas.errors import DodasError, TemplateError

if TYPE_CHECKING:  # the plan's modules only where a plan is made: read-only commands never make one
    from dodas.plan.plan import Plan
    from dodas.model.template import Template


#: an environment variable DODAS_INPUT_<name> is the input <name> (lowest precedence)
ENV_PREFIX = "DODAS_INPUT_"


def collect_inputs(pairs: list[str] | None, files: list[str] | str | None = None,
                   declared: set[str] | None = None) -> dict:
    """Inputs as the command line gives them, the later, more specific, winning:
    DODAS_INPUT_<name> environment variables (only for `declared` inputs, when
    given), then each --inputs file in order (a later file wins, as Helm's -f),
    then -i pairs. `files` may be one path (older callers) or a list."""
    from dodas.tosca.inputs import parse_cli_pairs, read_inputs_file

    files = [files] if isinstance(files, str) else list(files or [])
    given = environment_inputs(declared) if declared else {}
    seen: dict[str, str] = {}
    for f in files:
        try:
            key = os.path.realpath(f)
        except ValueError:  # a NUL in the name: read_inputs_file says so, located
            key = f
        if key in seen:
            same = f'"{f}"' if seen[key] == f else f'"{f}" (the same file as "{seen[key]}")'
            raise DodasError(f"--inputs {same} is given twice: give each inputs file once")
        seen[key] = f
    for f in files:
        given.update(read_inputs_file(f))
    cli, diags = parse_cli_pairs(list(pairs or []))
    if diags:
        raise TemplateError(diags)
    given.update(cli)
    return given


def environment_inputs(declared: set[str] | frozenset[str]) -> dict:
    """DODAS_INPUT_<name> for each declared input <name> (the name exactly as the
    template declares it), read as an `-i` value is; a problem with one is
    reported at "<environment DODAS_INPUT_name>"."""
    from dodas.tosca.inputs import GivenInput

    out = {}
    for name in sorted(declared):
        raw = os.environ.get(ENV_PREFIX + str(name))
        if raw is not None:
            out[name] = GivenInput(raw, f"<environment {ENV_PREFIX}{name}>", 1, 1, from_cli=True)
    return out


def _with_environment(template: Template, given: dict) -> dict:
    """`given` plus the DODAS_INPUT_ variables of declared inputs it lacks (the
    lowest precedence: anything given another way wins, kept inputs included)."""
    if not any(k.startswith(ENV_PREFIX) for k in os.environ):
        return given
    env = environment_inputs(template.input_names)
    return {**{k: v for k, v in env.items() if k not in given}, **given}


def plan(template: str, pairs: list[str] | None = None, inputs_file: list[str] | str | None = None,
         *, offline: bool = False, base_inputs: dict | None = None, allow_external_playbooks: bool = False,
         strict: bool = False) -> Plan:
    """Load, validate, model and plan a template; TemplateError lists every problem.

    `base_inputs` (values kept from an earlier deployment) are used for inputs
    that the template declares and that the file and -i pairs do not give."""
    given = dict(base_inputs or {})
    given.update(collect_inputs(pairs, inputs_file))
    return plan_given(template, given, offline=offline, allow_external_playbooks=allow_external_playbooks,
                      strict=strict)


def plan_given(template: str | Template, given: dict, *, offline: bool = False,
               allow_external_playbooks: bool = False, unknown_inputs: bool = False, strict: bool = False,
               environment: bool = True) -> Plan:
    """Plan from inputs already collected (with `environment`, DODAS_INPUT_
    variables fill in declared inputs `given` lacks). `template` is a file, or
    one the caller read already (model/template.py), which is then read no
    more. Playbooks outside dodas's own and the
    template's directory are refused unless `allow_external_playbooks`: the
    command line's --allow-external-playbooks; a server must never pass True
    for a template it was sent."""
    from dodas.model import indexes, managed
    from dodas.model.build import build
    from dodas.model.template import Template
    from dodas.plan.plan import make_plan
    from dodas.tosca.loader import load

    tpl = template if isinstance(template, Template) else Template.read(template)
    if environment:
        given = _with_environment(tpl, given)
    given, counts = managed.split(given)  # counts the autoscaler manages are no template input
    given, kept_indexes = indexes.split(given)  # nor the indexes left after removals by name
    loaded = load(tpl.source, given, offline=offline, unknown_inputs=unknown_inputs)
    # validate reports what plan and up refuse for safety (an external playbook); they refuse it
    model = build(loaded, allow_external_playbooks=allow_external_playbooks, report_unsafe=unknown_inputs,
                  managed_counts={**counts, **kept_indexes})
    plan = make_plan(model, loaded.smap)
    plan.unknown_inputs = loaded.unknown_inputs
    if not unknown_inputs:  # plan and up: a node dodas only knows would be deployed as nothing
        from dodas.model.support import known_only_nodes

        refused = known_only_nodes(model)
        if refused:
            raise TemplateError([loaded.smap.diag(("topology_template", "node_templates", name, "type"),
                                                  f'node "{name}" ({model.nodes[name].type}) is known to dodas but '
                                                  f"cannot be deployed by it: {why}")
                                 for name, why in refused.items()])
    if strict and model.warnings:  # --strict: what is only warned about is refused
        raise TemplateError(list(model.warnings))
    return plan


def validate(template: str, pairs: list[str] | None = None, inputs_file: list[str] | str | None = None,
             *, offline: bool = False, allow_external_playbooks: bool = False, strict: bool = False) -> Plan:
    """Everything `plan` checks, without requiring inputs: like `terraform
    validate`, a required input nobody gave is an unknown of its declared type
    (`Plan.unknown_inputs` names them), and what depends on it is checked as far as
    a value of that type allows. Given inputs are checked as `plan` checks them."""
    return plan_given(template, collect_inputs(pairs, inputs_file), offline=offline,
                      allow_external_playbooks=allow_external_playbooks, unknown_inputs=True, strict=strict)
