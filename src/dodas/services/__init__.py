"""The operations dodas offers, as plain functions.

The CLI (and later the server) are thin faces over these: they parse arguments,
call one function, and render its result. No deployment logic lives in a face.
"""

from __future__ import annotations

from dodas.errors import TemplateError
from dodas.plan.plan import Plan


def collect_inputs(pairs: list[str] | None, inputs_file: str | None) -> dict:
    """Inputs from an --inputs file, overridden by -i pairs (the later, more specific, wins)."""
    from dodas.tosca.inputs import parse_cli_pairs, read_inputs_file

    given = read_inputs_file(inputs_file) if inputs_file else {}
    cli, diags = parse_cli_pairs(list(pairs or []))
    if diags:
        raise TemplateError(diags)
    given.update(cli)
    return given


def plan(template: str, pairs: list[str] | None = None, inputs_file: str | None = None,
         *, offline: bool = False, base_inputs: dict | None = None, allow_external_playbooks: bool = False,
         strict: bool = False) -> Plan:
    """Load, validate, model and plan a template; TemplateError lists every problem.

    `base_inputs` (values kept from an earlier deployment) are used for inputs
    that the template declares and that the file and -i pairs do not give."""
    given = dict(base_inputs or {})
    given.update(collect_inputs(pairs, inputs_file))
    return plan_given(template, given, offline=offline, allow_external_playbooks=allow_external_playbooks,
                      strict=strict)


def plan_given(template: str, given: dict, *, offline: bool = False, allow_external_playbooks: bool = False,
               unknown_inputs: bool = False, strict: bool = False) -> Plan:
    """Plan from inputs already collected. Playbooks outside dodas's own and the
    template's directory are refused unless `allow_external_playbooks`: the
    command line's --allow-external-playbooks; a server must never pass True
    for a template it was sent."""
    from dodas.model.build import build
    from dodas.plan.plan import make_plan
    from dodas.tosca.loader import load

    loaded = load(template, given, offline=offline, unknown_inputs=unknown_inputs)
    model = build(loaded, allow_external_playbooks=allow_external_playbooks)
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


def validate(template: str, pairs: list[str] | None = None, inputs_file: str | None = None,
             *, offline: bool = False, allow_external_playbooks: bool = False, strict: bool = False) -> Plan:
    """Everything `plan` checks, without requiring inputs: like `terraform
    validate`, a required input nobody gave is an unknown of its declared type
    (`Plan.unknown_inputs` names them), and what depends on it is checked as far as
    a value of that type allows. Given inputs are checked as `plan` checks them."""
    return plan_given(template, collect_inputs(pairs, inputs_file), offline=offline,
                      allow_external_playbooks=allow_external_playbooks, unknown_inputs=True, strict=strict)
