"""The dashboard's list, a row at a time, without a browser (its browser tests
are tests/test_dashboard_list.py): what each row's Destroy says when it cannot
be used (view.row_actions), and a page of the list cut after filtering, each
row with what it holds, its unfinished requests and whether the caller may
operate it (services/listing.py); and a deployment page's progress before a
worker recorded the deployment (view.progress)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("status", "work", "operate", "says"), [
    ("CREATE_COMPLETE", [], True, None),
    ("CREATE_IN_PROGRESS", [{"operation": "apply", "status": "running"}], True, None),
    ("CREATE_COMPLETE", [{"operation": "destroy", "status": "queued"}], True, "A destroy is queued already."),
    ("CREATE_COMPLETE", [{"operation": "destroy", "status": "running"}], True, "Being destroyed."),
    ("DELETE_IN_PROGRESS", [], True, "Being destroyed."),
    ("QUEUED", [{"operation": "apply", "status": "queued"}], True, "Its creation has not started yet."),
    ("CREATE_COMPLETE", [], False, "You may read it, not change it."),
])
def test_a_rows_destroy_says_why_it_cannot_be_used(status, work, operate, says):
    from dodas.server.web.view import row_actions

    opened, destroy = row_actions({"name": "d", "status": status, "work": work, "operate": operate})
    assert opened == {"label": "Open", "href": "/web/deployments/d", "reason": None}
    assert destroy["reason"] == says and destroy["href"] == "/web/deployments/d?destroy=1"


def test_a_destroyed_rows_only_action_is_open_and_a_failed_destroy_can_be_tried_again():
    from dodas.server.web.view import row_actions

    assert [a["label"] for a in row_actions({"name": "d", "status": "DELETE_COMPLETE", "operate": True})] == ["Open"]
    assert row_actions({"name": "d", "status": "DELETE_FAILED", "operate": True})[1]["label"] == "Destroy again"


def test_a_page_of_the_list_is_cut_after_filtering_and_its_rows_say_what_they_hold():
    from types import SimpleNamespace

    from dodas.services import listing
    from dodas.services.tenancy import Caller
    from dodas.state import queue

    for i in range(5):  # asked for, not started yet: QUEUED, nothing held
        assert queue.set_access(f"q{i}", "iss|alice", "alice", None)
    alice = Caller(key="iss|alice", username="alice", groups=frozenset(), admin=False)
    found = listing.page(SimpleNamespace(groups={}), alice, None, 2, 1, destroyed=False)
    assert found["total"] == 5 and [i["name"] for i in found["items"]] == ["q1", "q2"]
    assert all(i["size"] is None and i["work"] == [] and i["operate"] and i["owner"] == "alice"
               for i in found["items"])
    assert listing.page(SimpleNamespace(groups={}), alice, "CREATE_COMPLETE", 2, 0, destroyed=False)["total"] == 0
    bob = Caller(key="iss|bob", username="bob", groups=frozenset(), admin=False)
    assert listing.page(SimpleNamespace(groups={}), bob, None, 50, 0, destroyed=False)["total"] == 0


def test_a_creation_a_worker_took_before_recording_it_shows_the_plans_total(dodas_home):
    """A worker leases a creation, then plans and picks a provider before it
    records the deployment: meanwhile the page says "create running", and must
    say "0 of 4 ready" (the plan confirmed), not "0 of 0" (issue 29's truth)."""
    import json
    import textwrap

    from support.server import SIM

    from dodas.server.config import ServerConfig
    from dodas.server.web import view
    from dodas.services import requested, served
    from dodas.services.tenancy import Caller
    from dodas.state import queue

    (dodas_home / "config").mkdir(parents=True)
    (dodas_home / "config" / "providers.yaml").write_text(json.dumps({"providers": [SIM]}))
    boxes = textwrap.dedent("""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                scalable: {properties: {count: 4}}
                host: {properties: {num_cpus: 1, mem_size: 1 GiB}}
        """)
    alice = Caller(key="iss|alice", username="alice", groups=frozenset(), admin=False)
    requested.create(ServerConfig(default_providers=("sim",)), alice, "four", requested.Ask(template=boxes))
    assert view.progress(served.states(alice, "four"), None)["total"] == 4, "queued: 0 of 4 already"
    assert queue.lease("a-worker", 30.0) is not None  # what a worker does first
    st = served.states(alice, "four")
    assert st["status"] == "QUEUED" and [w["status"] for w in st["work"]] == ["running"]
    shown = view.progress(st, None)
    assert (shown["ready"], shown["total"], shown["doing"]) == (0, 4, "apply") and shown["since"]
