"""The dashboard tells the truth (issue 29), in a real browser (Debian's
Chromium through Selenium), one test per thing a user must be able to see:
refusals where they belong, queued work and what it waits for, progress
counts moving, the log following, a destroyed deployment looking destroyed,
where to click next at the top of a deployment's page, the catalogue for this
user on this server, and the list at a phone's width without sideways scrolling.

The server runs one worker on two simulated providers: "sim" makes machines at
once, "slow" takes a few seconds for each and, while the test's hold file
exists, holds them all (its `create_hold`): a deployment on it is in progress,
and holds the worker, for as long as the test looks at it or at what waits
behind it, however busy the machine is, until the test releases it. The tests
share one server and run in order (each says what it starts from). With
DODAS_SCREENSHOTS set, the screenshots refresh docs/screenshots/.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import element, need_chromium, screenshot, shot_path, text_of, wait_for
from support.hold import held
from support.dashsite import CLOUDY, dashboard_site
from support.server import SIM

pytestmark = pytest.mark.timeout(900)

#: each machine of the slow provider takes this long, once released: the counts move over a few polls
SLOW_S = 2.0
BOXES = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    metadata: {display_name: "Boxes", category: Testing, icon: cluster}
    description: >
      Scalable boxes with a notebook page; `n` of them. Deploy it with
      --provider set to a provider of type simulated.
    topology_template:
      inputs:
        n:
          type: integer
          default: 1
          description: How many boxes. Each has one core.
          constraints: [{in_range: [1, 6]}]
        notebook_token: {type: string, default: "tok-0123456789abcdef", description: The notebook's token.}
      node_templates:
        box:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: {get_input: n}}}
            host: {properties: {num_cpus: 1, mem_size: 1 GiB}}
      outputs:
        address: {value: {get_attribute: [box, public_address, 0]}}
        notebook_token: {value: {get_input: notebook_token}}
        jupyter_url: {value: {concat: ["http://", {get_attribute: [box, public_address, 0]}, ":8888/lab"]}}
    """)


@pytest.fixture(scope="module")
def site(tmp_path_factory, hold_file) -> Iterator[tuple[Any, str, Path]]:
    need_chromium()
    slow = {**SIM, "name": "slow", "rank": 2, "create_latency": SLOW_S, "create_hold": str(hold_file)}
    with dashboard_site(tmp_path_factory.mktemp("truth"), providers=[SIM, slow], groups=["/physics"],
                        catalogue={"boxes": BOXES, "cloudy": CLOUDY}, server={"user_quota": {"instances": 6}}) as site:
        yield site.driver, site.url, site.server.log


def _status(driver) -> str:
    from selenium.common.exceptions import WebDriverException
    try:
        return driver.find_element("id", "status").text
    except WebDriverException:
        return ""


def _set(driver, field: str, value: str) -> None:
    box = driver.find_element("id", f"in-{field}")
    box.clear()
    box.send_keys(value)


def _submit(driver, field: str = "name") -> None:
    """Send the form with Enter in a field, as one does."""
    from selenium.webdriver.common.keys import Keys
    driver.find_element("id", f"in-{field}").send_keys(Keys.ENTER)


def _deploy(driver, url: str, name: str, n: int, provider: str = "") -> None:
    """Through the form and its plan, as a user does."""
    from selenium.webdriver.support.ui import Select

    driver.get(f"{url}/web/catalogue/boxes")
    _set(driver, "name", name)
    _set(driver, "n", str(n))
    Select(driver.find_element("id", "in-provider")).select_by_value(provider)
    _submit(driver)
    element(driver, "#confirm").click()
    wait_for(driver, lambda d: d.current_url.endswith(f"/web/deployments/{name}"), message=f"{name}'s page")


def _plain(text: str) -> None:
    """Nothing of the command line or of the server's files in what the user reads."""
    for word in ("--provider", "--overcommit", "providers.yaml", "/config", "In the page:"):
        assert word not in text, (word, text)


def test_refusals_are_shown_where_they_belong_in_the_users_words(site, tmp_path):
    driver, url, _ = site
    # a template no provider here can take: above the form, without flags or paths
    driver.get(f"{url}/web/catalogue/cloudy")
    _set(driver, "name", "cloudy-1")
    _submit(driver)
    said = text_of(driver, "#form-error")
    assert "openstack" in said and "Provider field" in said, said
    _plain(said)
    assert text_of(driver, "#in-name-err") == "", "not a matter of the name"
    screenshot(driver, shot_path("refusal-form.png", tmp_path))

    # a name already taken: under the Name field
    _deploy(driver, url, "first", 1, "sim")
    wait_for(driver, lambda d: _status(d) == "CREATE_COMPLETE", message="first made")
    driver.get(f"{url}/web/catalogue/boxes")
    _set(driver, "name", "first")
    _submit(driver)
    wait_for(driver, lambda d: "taken" in text_of(d, "#in-name-err"), message="the name's refusal under it")
    assert not driver.find_elements("id", "form-error")

    # over the quota: the request as a whole, in the quota's words
    _set(driver, "name", "too-big")
    _set(driver, "n", "6")
    _submit(driver)
    said = wait_for(driver, lambda d: d.find_elements("id", "form-error") and text_of(d, "#form-error"),
                    message="the quota's refusal above the form")
    assert "quota" in said and "6 machines at most" in said and "7" in said, said
    assert text_of(driver, "#in-name-err") == ""
    _plain(driver.find_element("tag name", "main").text)
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, shot_path("refusal-quota.png", tmp_path))


def test_the_plan_shows_what_it_holds_against_the_quota(site, tmp_path):
    driver, url, _ = site  # "first" (one machine) made by the test before
    driver.get(f"{url}/web/catalogue/boxes")
    _set(driver, "name", "costed")
    _set(driver, "n", "3")
    _submit(driver)
    cost = wait_for(driver, lambda d: d.find_elements("id", "cost") and text_of(d, "#cost"), message="the plan's cost")
    assert "box 3 1 1 GiB" in cost and "Total 3 3 cores 3 GiB" in cost, cost
    quota = text_of(driver, ".quota")
    assert "4 of 6 machines with this (1 in use)" in quota, quota
    screenshot(driver, shot_path("plan-cost.png", tmp_path))
    driver.find_element("link text", "Cancel").click()


def test_progress_counts_move_and_the_log_follows(site, hold_file, tmp_path):
    driver, url, _ = site
    try:
        with held(hold_file):  # running, none of its machines made, for as long as the test looks
            _deploy(driver, url, "slow-one", 4, "slow")
            wait_for(driver, lambda d: d.find_elements("id", "elapsed"),
                     message="the running request's elapsed time")
            options = [o.text for o in driver.find_elements("css selector", "#log-node option")]
            assert options == ["all", "box"], f"the node filter knows every node from the start: {options}"
            assert text_of(driver, "#total") == "4" and text_of(driver, "#ready") == "0"
            first = text_of(driver, "#elapsed")
            wait_for(driver, lambda d: text_of(d, "#elapsed") != first, message="the elapsed time counting")
            screenshot(driver, shot_path("progress.png", tmp_path))
            driver.set_window_size(1280, 520)  # a log shorter than its lines: it must scroll to follow them
        wait_for(driver, lambda d: text_of(d, "#ready") == "4", 300, "4 of 4 ready")
        wait_for(driver, lambda d: _status(d) == "CREATE_COMPLETE", message="slow-one made")
        log = element(driver, "#log")
        wait_for(driver, lambda d: "slow-one complete" in log.text, message="the last line")
        assert _scrolls(driver, log), "enough lines to scroll"
        assert _below(driver, log) < 24, "the newest line kept in view as lines came"
        lines = [li.text for li in log.find_elements("tag name", "li")]
        assert all(len(li.split(" ", 2)) == 3 and li.split(" ", 2)[1] for li in lines), lines[:5]
        assert not any("dodas_report" in li for li in lines)

        driver.refresh()  # opened again: at its newest line
        log = element(driver, "#log")
        assert _below(driver, log) < 24, "the log opens at its newest line"
    finally:
        driver.set_window_size(1280, 900)


def _scrolls(driver, log) -> bool:
    return driver.execute_script("return arguments[0].scrollHeight > arguments[0].clientHeight", log)


def _below(driver, log) -> float:
    """How far the log's end is below what it shows."""
    return driver.execute_script("const l = arguments[0]; return l.scrollHeight - l.scrollTop - l.clientHeight", log)


def test_a_destroy_waiting_for_the_worker_is_shown_with_actions_disabled(site, hold_file, tmp_path):
    driver, url, _ = site
    with held(hold_file):  # the blocker holds the only worker until released
        _deploy(driver, url, "blocker", 1, "slow")
        driver.get(f"{url}/web/deployments/first")
        driver.find_element("id", "confirm-name").send_keys("first")
        driver.find_element("css selector", "#destroy-form button").click()
        wait_for(driver, lambda d: "destroy queued" in text_of(d, "#pending") or _status(d) == "DELETE_COMPLETE",
                 message="the destroy shown as queued")
        assert _status(driver) == "CREATE_COMPLETE", "the blocker still holds the worker"
        said = text_of(driver, "#requests")
        assert "destroy: queued" in said and "waits for a free worker" in said and "in the queue" in said, said
        assert "queued" in text_of(driver, "#blocked")
        assert not driver.find_element("css selector", "#destroy-form button").is_enabled()
        assert not driver.find_element("css selector", "#scale-form button").is_enabled()
        screenshot(driver, shot_path("destroy-queued.png", tmp_path))
    wait_for(driver, lambda d: _status(d) == "DELETE_COMPLETE", 300, "the destroy done once the worker is free")


def test_a_destroyed_deployment_looks_destroyed_and_leaves_the_list(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/deployments/first")  # destroyed by the test before
    assert _status(driver) == "DELETE_COMPLETE"
    assert element(driver, "#destroyed-note").is_displayed()
    body = driver.find_element("tag name", "main").text
    assert "not known yet" not in body and "pending" not in body and "Not made yet" not in body, body
    assert not driver.find_elements("css selector", ".graph-box")
    assert not driver.find_elements("id", "destroy-form")
    screenshot(driver, shot_path("destroyed.png", tmp_path))
    driver.get(f"{url}/web/deployments")
    listed = text_of(driver, "#list")
    assert "slow-one" in listed and "first" not in listed.split(), listed
    driver.find_element("id", "show-destroyed").click()
    driver.find_element("css selector", "form.filter button[type=submit]").click()
    wait_for(driver, lambda d: "first" in text_of(d, "#list"), message="destroyed ones shown when asked for")


def test_where_to_click_next_is_at_the_top(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/deployments/slow-one")
    outputs = element(driver, ".outputs-box")
    graph = element(driver, "#h-graph")
    assert outputs.location["y"] < graph.location["y"], "the outputs above the picture"
    first = driver.find_elements("css selector", ".outputs dt")[0].text
    assert first == "jupyter_url", "the notebook first"
    opener = driver.find_element("css selector", "dd[data-output='jupyter_url'] a.open")
    assert opener.text == "Open" and opener.get_attribute("href").endswith(":8888/lab")
    token = driver.find_element("css selector", "dd[data-output='notebook_token'] .secret")
    assert token.text == "********"
    driver.find_element("css selector", "dd[data-output='notebook_token'] .copy-button").click()
    wait_for(driver, lambda d: text_of(d, "dd[data-output='notebook_token'] .copied") == "Copied",
             message="the token copied")
    assert token.text == "********", "copied, not shown"
    driver.find_element("css selector", "dd[data-output='notebook_token'] .reveal-button").click()
    wait_for(driver, lambda d: token.text == "tok-0123456789abcdef", message="the token revealed")
    meta = text_of(driver, ".meta")
    assert "Template Boxes" in meta and "created" in meta and "owner alice" in meta, meta
    inputs = text_of(driver, ".inputs-list")
    assert "n\n4" in inputs and "********" in inputs and "tok-0123456789abcdef" not in inputs, inputs
    driver.find_element("css selector", "dd[data-output='notebook_token'] .reveal-button").click()
    wait_for(driver, lambda d: token.text == "********", message="masked again")
    screenshot(driver, shot_path("deployment-top.png", tmp_path))


def test_the_catalogue_puts_what_this_user_can_deploy_here_first(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/catalogue")
    cards = driver.find_elements("css selector", ".card")
    names = [c.find_element("tag name", "h2").text for c in cards]
    assert names == ["Boxes", "Cloud boxes"], names
    cloudy = cards[1]
    assert "unfit" in cloudy.get_attribute("class")
    assert "openstack" in cloudy.find_element("css selector", ".why").text
    boxes = cards[0]
    assert boxes.find_elements("css selector", "p code"), "backticks rendered as code"
    _plain(boxes.text)
    assert "`" not in boxes.text
    screenshot(driver, shot_path("catalogue-here.png", tmp_path))
    driver.get(f"{url}/web/catalogue/boxes")
    assert text_of(driver, "label[for='in-n']") == "How many boxes"
    assert "Each has one core." in text_of(driver, "#in-n-help")


def test_the_list_fits_a_phone(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/deployments")
    assert "Template" in text_of(driver, "#list thead") and "Created" in text_of(driver, "#list thead")
    rows = text_of(driver, "#list tbody")
    assert "slow-one CREATE_COMPLETE boxes slow alice" in rows, rows
    driver.set_window_size(390, 844)
    try:
        wide = driver.execute_script("return document.documentElement.scrollWidth")
        seen = driver.execute_script("return document.documentElement.clientWidth")
        assert wide <= seen, f"no sideways scrolling at a phone's width ({wide} > {seen})"
        screenshot(driver, shot_path("deployments-phone.png", tmp_path))
    finally:
        driver.set_window_size(1280, 900)
    screenshot(driver, shot_path("deployments-list.png", tmp_path))


def test_a_page_not_found_keeps_the_user_signed_in(site, tmp_path):
    driver, url, _ = site
    driver.get(f"{url}/web/deployments/no-such-thing")
    assert "Not found" in text_of(driver, "h1")
    assert "alice" in text_of(driver, ".who") and "Log out" in text_of(driver, ".who")
