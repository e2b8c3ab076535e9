"""plan/diff.py's rules, tested directly: a plan made from a small template, and
what the state "recorded" given as data, the way services/planning.py hands them
over. tests/test_plan_diff.py checks the same rules end to end (each plan applied
for real and compared with what `up` did); here every rule and every reason is
checked on its own, in milliseconds, including the cases a real run reaches only
by breaking things (a machine deleted outside dodas, a creation that never
finished)."""

from __future__ import annotations

import textwrap

import pytest

from dodas import services
from dodas.model.deployment import Instance
from dodas.plan.diff import Desired, Recorded, changed_parts, compare, summary

from support.templates import front_and_boxes

TEMPLATE = front_and_boxes(2)


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """The same template planned with 2 and with 1 box."""
    path = tmp_path_factory.mktemp("t") / "t.yaml"
    path.write_text(textwrap.dedent(TEMPLATE))
    return {n: services.plan_given(str(path), services.collect_inputs([f"n={n}"]), offline=True, environment=False)
            for n in (1, 2)}


def I(ident: str) -> Instance:  # noqa: E743 - reads as the instance id it stands for
    node, index = ident.rstrip("]").split("[")
    return Instance(node, int(index))


def everything_running(plan) -> dict[Instance, Recorded]:
    """The state after a successful `up` of `plan`."""
    return {i: Recorded("compute", "started") if p.node.is_compute
            else Recorded("software", "started", "h", {"a": "1"}) for i, p in plan.instances.items()}


def same(plan) -> dict[Instance, Desired]:
    return {i: Desired("h", {"a": "1"}) for i, p in plan.instances.items() if not p.node.is_compute}


def acts(changes) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {c.instance: (c.action, c.reasons) for c in changes}


def test_a_new_deployment_creates_everything_in_wave_order(plans):
    plan = plans[2]
    changes = compare(plan, {}, {})
    assert {c.action for c in changes} == {"create"} and all(c.reasons == ("new instance",) for c in changes)
    order = [c.instance for c in changes]
    assert order == [i.id for wave in plan.waves for i in wave]
    assert order.index("front[0]") < order.index("web[0]") < order.index("app[0]")
    assert summary(changes) == {"create": 6, "reconfigure": 0, "restart": 0, "delete": 0}


def test_nothing_changed_is_no_change(plans):
    plan = plans[2]
    assert compare(plan, everything_running(plan), same(plan)) == []


def test_a_machine_deleted_outside_dodas_is_created_and_what_it_hosts_configured_again(plans):
    plan = plans[2]
    rec = everything_running(plan)
    rec[I("box[1]")] = Recorded("compute", "missing")
    assert acts(compare(plan, rec, same(plan))) == {
        "box[1]": ("create", ("its machine was deleted outside dodas (found by refresh)",)),
        "app[1]": ("reconfigure", ("its machine box[1] is created again",)),
    }


@pytest.mark.parametrize("state", ["creating", "failed", "deleting"])
def test_a_machine_whose_creation_did_not_finish_is_created_again(plans, state):
    plan = plans[2]
    rec = everything_running(plan)
    rec[I("front[0]")] = Recorded("compute", state)
    got = acts(compare(plan, rec, same(plan)))
    assert got["front[0]"] == ("create", (f"its last creation did not finish (state {state})",))
    assert got["web[0]"] == ("reconfigure", ("its machine front[0] is created again",))
    assert set(got) == {"front[0]", "web[0]"}  # box and app are untouched


def test_software_whose_configuration_did_not_finish_runs_again(plans):
    plan = plans[2]
    rec = everything_running(plan)
    rec[I("web[0]")] = Recorded("software", "configuring", "h", {"a": "1"})
    assert acts(compare(plan, rec, same(plan))) == {
        "web[0]": ("reconfigure", ("its last configuration did not finish (state configuring)",))}


def test_a_changed_fingerprint_names_its_changed_parts(plans):
    plan = plans[2]
    want = same(plan)
    want[I("app[0]")] = Desired("h2", {"a": "2", "b": "1"})
    want[I("app[1]")] = Desired("h3", {})
    assert acts(compare(plan, everything_running(plan), want)) == {
        "app[0]": ("reconfigure", ("a changed", "b added")),
        "app[1]": ("reconfigure", ("a removed",)),
    }


def test_a_value_known_only_after_apply_may_change(plans):
    plan = plans[2]
    want = same(plan)
    want[I("web[0]")] = Desired(unknown="the address of front[0]")
    assert acts(compare(plan, everything_running(plan), want)) == {
        "web[0]": ("reconfigure", ("may change: the address of front[0] (known after apply)",))}


def test_dead_services_are_restarted_unless_the_instance_is_reconfigured_anyway(plans):
    plan = plans[2]
    rec = everything_running(plan)
    rec[I("app[0]")] = Recorded("software", "started", "h", {"a": "1"}, dead_services=["api", "ui"])
    rec[I("app[1]")] = Recorded("software", "started", "h", {"a": "1"}, dead_services=["api"])
    want = same(plan)
    want[I("app[1]")] = Desired("h2", {"a": "2"})
    got = acts(compare(plan, rec, want))
    assert got == {"app[0]": ("restart", ("service api is not running", "service ui is not running")),
                   "app[1]": ("reconfigure", ("a changed",))}
    assert summary(compare(plan, rec, want)) == {"create": 0, "reconfigure": 1, "restart": 1, "delete": 0}


def test_scaling_down_deletes_the_last_instances_first_with_the_new_count(plans):
    rec = everything_running(plans[2])
    changes = compare(plans[1], rec, same(plans[1]))
    assert acts(changes) == {"app[1]": ("delete", ("app now has 1 instance",)),
                             "box[1]": ("delete", ("box now has 1 instance",))}
    assert [c.kind for c in changes] == ["software", "compute"]


def test_a_node_gone_from_the_template_is_deleted_first(plans):
    plan = plans[2]
    rec = everything_running(plan)
    rec[I("old[0]")] = Recorded("software", "started")
    changes = compare(plan, rec, same(plan))
    assert [(c.instance, c.action, c.reasons) for c in changes] == [
        ("old[0]", "delete", ("its node is no longer in the template",))]
    rec[I("front[0]")] = Recorded("compute", "missing")
    assert compare(plan, rec, same(plan))[0].instance == "old[0]", "deletions come before creations"


def test_scaling_up_creates_only_the_new_pair(plans):
    rec = everything_running(plans[1])
    assert acts(compare(plans[2], rec, same(plans[2]))) == {"box[1]": ("create", ("new instance",)),
                                                            "app[1]": ("create", ("new instance",))}


def test_changed_parts():
    assert changed_parts({}, {"a": "1"}) == ["its configuration changed"], "recorded before parts were kept"
    assert changed_parts({"a": "1"}, {"a": "1"}) == ["its configuration changed"], "the hash changed, no part did"
    assert changed_parts({"b": "1", "a": "1", "c": "1"}, {"a": "2", "b": "1", "d": "1"}) == [
        "a changed", "d added", "c removed"]


def test_changes_serialise_as_the_plan_json_shows_them(plans):
    (change,) = [c for c in compare(plans[2], {}, {}) if c.instance == "web[0]"]
    assert change.to_json() == {"instance": "web[0]", "node": "web", "kind": "software", "action": "create",
                                "reasons": ["new instance"]}
