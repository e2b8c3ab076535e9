"""What a deployment is made of and what it costs, on the dashboard (issue 29),
in a real browser (Debian's Chromium through Selenium), as a user does it:

- the deploy form says what the deployment would hold (cores and memory per
  node and in total, against the user's quota), drawn by the server with the
  page and again as the values change;
- the template's bounds are on the form's fields, in words, and the server
  refuses a value outside them under its field (a browser that sends it anyway);
- a refusal of the provider the user chose (its quota) is shown under the
  Provider field, and dodas's own choice then goes elsewhere;
- a deployment's page lists its machines (address, state, the provider's id,
  what each runs, its log) and what they hold now against the owner's quota.

The server runs two simulated providers: "sim" (first choice) has a project
quota of 4 cores, "spare" none; while the test's hold file exists, "sim" makes
no machine (its `create_hold`), so that a page is opened before its deployment
is made however fast the machine is. The tests share the server and run in order.
With DODAS_SCREENSHOTS set, the screenshots refresh docs/screenshots/.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import element, need_chromium, screenshot, shot_path, text_of, wait_for
from support.hold import held
from support.dashsite import dashboard_site
from support.server import SIM

pytestmark = pytest.mark.timeout(900)

PAIR = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    metadata: {display_name: "Front and workers", category: Testing}
    description: A front machine with a web server, and workers each running an application.
    topology_template:
      inputs:
        workers:
          type: integer
          default: 2
          description: How many workers. Each runs the application.
          constraints: [{in_range: [1, 5]}]
        worker_cores:
          type: integer
          default: 1
          description: Cores of each worker.
          constraints: [{greater_or_equal: 1}, {less_or_equal: 4}]
        front_cores:
          type: integer
          default: 1
          description: Cores of the front machine.
        label:
          type: string
          default: run
          description: A short label for the run.
          constraints: [{max_length: 12}]
      node_templates:
        front:
          type: tosca.nodes.indigo.Compute
          capabilities:
            host: {properties: {num_cpus: {get_input: front_cores}, mem_size: 512 MiB}}
        web:
          type: tosca.nodes.WebServer
          requirements: [{host: front}]
        worker:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: {get_input: workers}}}
            host: {properties: {num_cpus: {get_input: worker_cores}, mem_size: 1 GiB}}
        app:
          type: tosca.nodes.SoftwareComponent
          requirements: [{host: worker}, {dependency: web}]
    """)


@pytest.fixture(scope="module")
def site(tmp_path_factory, hold_file) -> Iterator[tuple[Any, str, Path]]:
    need_chromium()
    quota = {**SIM, "quota": {"cores": 4}, "create_hold": str(hold_file)}
    spare = {**SIM, "name": "spare", "rank": 2}
    with dashboard_site(tmp_path_factory.mktemp("detail"), providers=[quota, spare], catalogue={"pair": PAIR},
                        server={"user_quota": {"instances": 8, "cores": 12}}) as site:
        yield site.driver, site.url, site.server.home


def _set(driver, field: str, value: str) -> None:
    box = driver.find_element("id", f"in-{field}")
    box.clear()
    box.send_keys(value)


def _submit(driver) -> None:
    from selenium.webdriver.common.keys import Keys
    driver.find_element("id", "in-name").send_keys(Keys.ENTER)


def _provider(driver, value: str) -> None:
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("id", "in-provider")).select_by_value(value)


def test_the_form_says_what_it_would_hold_and_follows_the_values(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/catalogue/pair")
    # drawn by the server with the page: the template's defaults
    cost = text_of(driver, "#cost")
    assert "front 1 1 512 MiB" in cost and "worker 2 1 1 GiB" in cost, cost
    assert "Total 3 3 cores 2.5 GiB" in cost, cost
    quota = text_of(driver, "#form-cost .quota")
    assert "3 of 8 machines with this (0 in use)" in quota and "3 of 12 cores with this (0 in use)" in quota, quota

    # the user changes the counts: the figure follows
    _set(driver, "workers", "4")
    _set(driver, "worker_cores", "2")
    wait_for(driver, lambda d: "worker 4 2 1 GiB" in text_of(d, "#cost"), message="the cost following the values")
    cost = text_of(driver, "#cost")
    assert "Total 5 9 cores 4.5 GiB" in cost, cost
    assert "9 of 12 cores with this" in text_of(driver, "#form-cost .quota")
    screenshot(driver, shot_path("form-cost.png", tmp_path))

    # a machine asking for no core at all (an input left at 0) does not pass unnoticed
    _set(driver, "front_cores", "0")
    wait_for(driver, lambda d: "front 1 1 (0 asked: counted as 1)" in text_of(d, "#cost"),
             message="0 cores said so")


def test_the_templates_bounds_are_on_the_form_and_the_server_holds_to_them(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/catalogue/pair")
    workers = driver.find_element("id", "in-workers")
    assert (workers.get_attribute("min"), workers.get_attribute("max")) == ("1", "5")
    assert text_of(driver, "#in-workers-bounds") == "From 1 to 5."
    assert "in-workers-bounds" in workers.get_attribute("aria-describedby")
    assert text_of(driver, "#in-worker_cores-bounds") == "From 1 to 4."
    assert driver.find_element("id", "in-label").get_attribute("maxlength") == "12"
    assert text_of(driver, "#in-label-bounds") == "At most 12 characters."

    # the page's own check, before sending
    _set(driver, "workers", "9")
    _submit(driver)
    wait_for(driver, lambda d: "at most 5" in text_of(d, "#in-workers-err"), message="the page's check")
    assert driver.current_url.endswith("/web/catalogue/pair"), "nothing sent"

    # a browser that sends it anyway (no script, or an old one): the server refuses it, under the field
    driver.execute_script("document.querySelector('form[data-check]').dataset.nocheck = '1'")
    _set(driver, "name", "too-many")
    _submit(driver)
    said = wait_for(driver, lambda d: d.find_elements("css selector", "[data-field='workers'].invalid")
                    and text_of(d, "#in-workers-err"), message="the server's refusal under the field")
    assert said == "Outside the template's bounds (from 1 to 5): got 9.", said
    assert element(driver, "#in-workers").get_attribute("value") == "9", "the value sent, kept to correct"
    assert element(driver, "#in-workers").get_attribute("aria-invalid") == "true"
    assert not driver.find_elements("id", "confirm"), "no plan for a value outside the bounds"
    screenshot(driver, shot_path("form-bounds.png", tmp_path))


def test_a_refusal_of_the_chosen_provider_is_shown_under_the_provider_field(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/catalogue/pair")
    _set(driver, "name", "big")
    _set(driver, "workers", "5")  # 6 cores: over sim's project quota of 4
    _provider(driver, "sim")
    _submit(driver)
    said = wait_for(driver, lambda d: text_of(d, "#in-provider-err"), message="the provider's refusal under it")
    assert "sim" in said and "quota exceeded" in said and "needs 6 vcpus" in said and "may use 4" in said, said
    assert "Choose another provider" in said, said
    assert element(driver, "#in-provider").get_attribute("aria-invalid") == "true"
    assert not driver.find_elements("id", "form-error"), "about the provider, not the whole request"
    assert text_of(driver, "#in-name-err") == ""
    for word in ("--provider", "--overcommit", "providers.yaml", "cannot deploy on"):
        assert word not in said, (word, said)
    assert "worker 5 1 1 GiB" in text_of(driver, "#cost"), "the page drawn again by the server: the values sent"
    screenshot(driver, shot_path("refusal-provider.png", tmp_path))

    # as the message says: let dodas choose, and it goes to the provider that can take it
    _provider(driver, "")
    _submit(driver)
    element(driver, "#confirm")
    lead = text_of(driver, ".lead")
    assert "on provider spare" in lead, lead
    driver.find_element("link text", "Cancel").click()


def _servers(home: Path, provider: str) -> dict[str, dict[str, Any]]:
    """The simulated provider's own records of the servers it made, by instance."""
    out = {}
    for f in (home / "data" / "simulated" / provider).glob("*/*.json"):
        server = json.loads(f.read_text())
        out[server["tags"]["dodas:instance"]] = server
    return out


def _machine_rows(driver) -> dict[str, dict[str, str]]:
    """The machines' table as text, by machine."""
    out = {}
    for row in driver.find_elements("css selector", "#machine-list tbody tr"):
        cell = lambda css: row.find_element("css selector", css).text  # noqa: E731
        out[row.get_attribute("data-machine")] = {"address": cell(".address"), "provider_id": cell(".provider-id"),
                                                  "runs": cell(".runs"), "state": cell(".state-badge")}
    return out


def test_a_deployments_page_lists_its_machines_and_what_they_hold(site, hold_file, tmp_path):
    driver, url, home = site
    with held(hold_file):  # its page opened, and read, before any of its machines is made
        driver.get(f"{url}/web/catalogue/pair")
        _set(driver, "name", "pair-1")
        _provider(driver, "sim")
        _submit(driver)
        element(driver, "#confirm").click()
        wait_for(driver, lambda d: d.current_url.endswith("/web/deployments/pair-1"), message="its page")
        element(driver, "#status")
        assert text_of(driver, "#status") != "CREATE_COMPLETE" and _servers(home, "sim") == {}, "not made yet"
        driver.execute_script("window.notReloaded = true")
    wait_for(driver, lambda d: text_of(d, "#status") == "CREATE_COMPLETE", 300, "pair-1 made")
    made = _servers(home, "sim")
    assert sorted(made) == ["front[0]", "worker[0]", "worker[1]"], made
    # read in one go (the part is drawn again when the status changes: a row read may be replaced)
    seen = wait_for(driver, lambda d: (rows := _machine_rows(d)) and sorted(rows) == sorted(made)
                    and all(r["state"] == "created" and r["runs"] != "—" for r in rows.values()) and rows,
                    message="the machines, drawn again once made")
    assert driver.execute_script("return window.notReloaded === true"), "drawn again in the page, not reloaded"
    runs = {"front[0]": "web[0]", "worker[0]": "app[0]", "worker[1]": "app[1]"}
    for inst, server in made.items():
        row = seen[inst]
        assert server["address"] in row["address"], (inst, row)
        assert server["id"] in row["provider_id"] and "on sim" in row["provider_id"], (inst, row)
        assert row["runs"] == runs[inst] and row["state"] == "created", (inst, row)

    wait_for(driver, lambda d: "no outputs" in text_of(d, ".outputs-box"),
             message="a template without outputs not waiting for them")
    inputs = wait_for(driver, lambda d: d.find_elements("css selector", ".inputs-list") and text_of(d, ".inputs-list"),
                      message="the inputs it was made with, on a page opened before it was made")
    assert "workers\n2" in inputs, inputs
    holds = text_of(driver, "#held")
    assert "front 1 1 512 MiB" in holds and "worker 2 1 1 GiB" in holds and "Total 3 3 cores 2.5 GiB" in holds, holds
    quota = text_of(driver, "#machines .quota")
    assert "3 of 8 machines in use" in quota and "3 of 12 cores in use" in quota, quota
    assert "this deployment’s 3 machines and 3 cores among them" in quota, quota
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, shot_path("deployment-machines.png", tmp_path))

    driver.set_window_size(390, 844)  # at a phone's width the machines' table scrolls in its box, not the page
    try:
        wide, seen_w = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert wide <= seen_w, f"no sideways scrolling at a phone's width ({wide} > {seen_w})"
    finally:
        driver.set_window_size(1280, 900)

    # one machine's log: its own lines and those of what it runs, nothing else
    element(driver, "tr[data-machine='worker[1]'] a").click()
    wait_for(driver, lambda d: "machine=worker" in d.current_url, message="the machine's log")
    scope = text_of(driver, "#log-scope")
    assert "machine worker[1]" in scope and "(app[1])" in scope, scope
    sources = [s.text for s in driver.find_elements("css selector", "#log li .inst")]
    assert sources and set(sources) == {"worker[1]", "app[1]"}, sources
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, shot_path("machine-log.png", tmp_path))
    driver.find_element("link text", "Show every line").click()
    wait_for(driver, lambda d: not d.find_elements("id", "log-scope"), message="every line again")
    sources = {s.text for s in driver.find_elements("css selector", "#log li .inst")}
    assert {"front[0]", "worker[0]", "app[0]", "web[0]"} <= sources, sources


@pytest.mark.parametrize("message, chosen, field", [
    ("cannot deploy on provider sim:\n  provider sim: quota exceeded: the deployment needs 6 vcpus, 0 are in use "
     "and the project may use 4", "sim", "provider"),
    ("cannot deploy on any of the providers sim, spare:\n  provider sim: quota exceeded: ...\n  spare: ...", None,
     None),  # dodas chose: no field of the user's is at fault
    ("cannot deploy on provider local:\n  local: the machines of this plan need 12 cores (this machine has 2; with "
     "cpu_allocation_ratio 4, at most 8) [box: 12 x (1 cores, 1 GiB)]: lower the counts or sizes, or accept the "
     "overcommit with --overcommit", "local", "provider"),
    ("over the user quota of alice: 6 machines at most; this request would make 7 (1 in use, 6 asked)", "sim", None),
    ('the name "first" is taken: choose another', "sim", "name"),
])
def test_a_refusal_is_placed_under_the_field_it_is_about(message, chosen, field):
    from dodas.server.web import wording

    said = wording.for_form(message)
    assert wording.field_of(said, chosen) == field, said
    assert "--" not in said and "cannot deploy on provider" not in said, said
    if field == "provider":  # the provider named once, then what it says
        assert said.startswith(f"provider {chosen} cannot take this deployment: ") and f" {chosen}: " not in said, said


@pytest.mark.parametrize("constraints, said", [
    ([{"operator": "in_range", "value": [1, 5]}], "From 1 to 5."),
    ([{"operator": "greater_or_equal", "value": 1}, {"operator": "less_or_equal", "value": 4}], "From 1 to 4."),
    ([{"operator": "greater_than", "value": 0}], "More than 0."),
    ([{"operator": "less_or_equal", "value": "8 GiB"}], "At most 8 GiB."),
    ([{"operator": "valid_values", "value": ["small", "large"]}], "One of: small, large."),
    ([{"operator": "min_length", "value": 8}, {"operator": "max_length", "value": 64}],
     "At least 8 characters. At most 64 characters."),
    ([], ""),
])
def test_a_fields_bounds_in_words(constraints, said):
    from dodas.server.web import forms

    assert forms.bounds_text(constraints) == said
