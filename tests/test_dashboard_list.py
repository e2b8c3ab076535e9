"""The dashboard's list and catalogue as a user works them (issue 29), in a real
browser (Debian's Chromium through Selenium): the list's Size column and row
actions, the list following changes made elsewhere without a reload, the
catalogue's filter with and without JavaScript, the focus on a mistyped
destroy confirmation, graph text that stays inside its boxes, and AA contrast
of the badges and buttons, computed in the browser from the computed styles.

The server runs one worker on two simulated providers: "sim" makes machines at
once, "slow" takes a few seconds for each and, while the test's hold file
exists, holds them all (its `create_hold`): a creation on it holds the worker
while the test looks at what waits behind it, or at its picture half-way,
however busy the machine is, until the test releases it. Deployments made "elsewhere" are
made through the REST API as the same user. The tests share one server and
run in order (each says what it starts from). With DODAS_SCREENSHOTS set, the
screenshots refresh docs/screenshots/.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from support.browser import (COLOUR_JS, contrasts, element, need_chromium, screenshot, scripts_off,
                             shot_path, text_of, wait_for)
from support.hold import held
from support.dashsite import CLOUDY, dashboard_site
from support.server import API, SIM, Server

pytestmark = pytest.mark.timeout(900)

#: each machine of the slow provider takes this long, once released: the picture changes over a few polls
SLOW_S = 2.0
BOXES = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    metadata: {display_name: "Boxes", category: Testing, icon: cluster, tags: "notebook, teaching"}
    description: Scalable boxes; `n` of them.
    topology_template:
      inputs:
        n: {type: integer, default: 1, description: How many boxes.}
      node_templates:
        box:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: {get_input: n}}}
            host: {properties: {num_cpus: 2, mem_size: 2 GiB}}
    """)
#: node names longer than a box: wide letters, and a long identifier; counts of two digits
LONG = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    metadata: {display_name: "Long names", category: Testing}
    description: Boxes whose names are longer than the picture's boxes.
    topology_template:
      node_templates:
        WWWWWWWWWWWWWWWWWWWWWWWWW:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: 11}}
            host: {properties: {num_cpus: 1, mem_size: 512 MiB}}
        worker_nodes_of_the_analysis_facility_in_bologna_mmm:
          type: tosca.nodes.indigo.Compute
          capabilities:
            host: {properties: {num_cpus: 1, mem_size: 512 MiB}}
          requirements:
            - dependency: WWWWWWWWWWWWWWWWWWWWWWWWW
    """)


@pytest.fixture(scope="module")
def site(tmp_path_factory, hold_file) -> Iterator[tuple[Any, Server]]:
    need_chromium()
    slow = {**SIM, "name": "slow", "rank": 2, "create_latency": SLOW_S, "create_hold": str(hold_file)}
    with dashboard_site(tmp_path_factory.mktemp("list"), providers=[SIM, slow], groups=["/physics"], cli_client=True,
                        catalogue={"boxes": BOXES, "cloudy": CLOUDY, "long": LONG}) as site:
        yield site.driver, site.server


def _create(server: Server, name: str, entry: str, provider: str, **inputs: Any) -> None:
    """A deployment asked for elsewhere (the REST API), as the same user."""
    r = server.as_("alice").post(API, json={"name": name, "catalogue": entry, "provider": provider,
                                            "inputs": inputs})
    assert r.status_code == 202, r.text


def _row(driver, name: str) -> str:
    """The list's row of `name` as the user reads it ("" when it is not listed)."""
    rows = driver.find_elements("css selector", f"#list tbody tr[data-name='{name}']")
    return rows[0].text if rows else ""


def _status(driver) -> str:
    return text_of(driver, "#status")


def _same_page(driver) -> bool:
    """True while the page the test marked has not been loaded again."""
    return driver.execute_script("return window.notReloaded === true")


def test_the_list_shows_sizes_and_follows_changes_without_a_reload(site, hold_file, tmp_path):
    driver, server = site
    driver.get(f"{server.url}/web/deployments")
    assert "No deployments running" in text_of(driver, "#no-list")
    driver.execute_script("window.notReloaded = true")
    _create(server, "alpha", "boxes", "sim", n=2)  # the first one: the table appears
    row = wait_for(driver, lambda d: "CREATE_COMPLETE" in _row(d, "alpha") and _row(d, "alpha"),
                   message="alpha listed and made, without a reload")
    assert "CREATE_COMPLETE" in row and "2 machines" in row and "4 cores, 4 GiB" in row, row
    assert "Open" in row and "Destroy" in row, row

    with held(hold_file):
        # made elsewhere: the row appears; the slow provider, held, holds the only worker meanwhile
        _create(server, "beta", "boxes", "slow", n=3)
        wait_for(driver, lambda d: "beta" in _row(d, "beta"), message="beta listed without a reload")
        # destroyed elsewhere while the worker is busy: queued, shown so, its Destroy disabled with the reason
        assert server.as_("alice").delete(f"{API}/alpha").status_code == 202
        row = wait_for(driver, lambda d: "destroy queued" in _row(d, "alpha") and _row(d, "alpha"),
                       message="alpha's destroy shown as queued")
        assert "A destroy is queued already." in row and "4 cores, 4 GiB" in row, row
        disabled = driver.find_element("css selector", "#list tr[data-name='alpha'] .button.disabled")
        assert disabled.text == "Destroy" and disabled.get_attribute("aria-disabled") == "true"
        assert "queued" in driver.find_element("id", disabled.get_attribute("aria-describedby")).text
        screenshot(driver, shot_path("list-live.png", tmp_path))

        # a keyboard user on beta's Open keeps the focus there while rows are drawn again and leave,
        # all of which happens once beta is released
        driver.execute_script("arguments[0].focus()", driver.find_element(
            "css selector", "#list tr[data-name='beta'] a[aria-label='Open beta']"))
        assert "CREATE_COMPLETE" not in _row(driver, "beta") and "destroy queued" in _row(driver, "alpha")
    wait_for(driver, lambda d: "CREATE_COMPLETE" in _row(d, "beta"), 300, "beta made, seen without a reload")
    assert driver.execute_script("return document.activeElement.getAttribute('aria-label')") == "Open beta"
    assert "3 machines" in _row(driver, "beta") and "6 cores, 6 GiB" in _row(driver, "beta")
    wait_for(driver, lambda d: not _row(d, "alpha"), 300, "alpha leaving the list once destroyed")
    assert driver.execute_script("return document.activeElement.getAttribute('aria-label')") == "Open beta"
    assert _same_page(driver), "the list followed all of it without being loaded again"

    with scripts_off(driver):  # without JavaScript: the same rows, sizes and actions, as the server draws them
        driver.get(f"{server.url}/web/deployments?destroyed=1")
        assert "DELETE_COMPLETE" in _row(driver, "alpha") and "Destroy" not in _row(driver, "alpha")
        assert "3 machines" in _row(driver, "beta")
        assert driver.find_element("css selector", "tr[data-name='beta'] a[aria-label='Destroy beta']")


def test_destroy_from_the_list_and_a_mistyped_name_keep_the_focus_on_the_name(site, tmp_path):
    driver, server = site  # beta made by the test before
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{server.url}/web/deployments")
    opener = driver.find_element("css selector", "#list tr[data-name='beta'] a[aria-label='Open beta']")
    assert opener.text == "Open" and opener.get_attribute("href").endswith("/web/deployments/beta")
    driver.find_element("css selector", "#list tr[data-name='beta'] a[aria-label='Destroy beta']").click()
    wait_for(driver, lambda d: "/web/deployments/beta" in d.current_url, message="beta's page")

    def focused(d) -> str:
        return d.execute_script("return document.activeElement.id")
    wait_for(driver, lambda d: focused(d) == "confirm-name", message="the focus in the confirmation")

    driver.switch_to.active_element.send_keys("betta", Keys.ENTER)
    wait_for(driver, lambda d: d.find_elements("css selector", "#confirm-name[aria-invalid='true']"),
             message="the page again with the mistake")
    assert focused(driver) == "confirm-name", "the focus is on the name field, not at the top of the page"
    assert 'type "beta" to confirm' in text_of(driver, "#confirm-err").lower()
    described = driver.find_element("id", "confirm-name").get_attribute("aria-describedby")
    assert described == "confirm-err", "the error is read with the field"
    assert driver.execute_script(
        "return [document.activeElement, document.getElementById('confirm-err')].every((e) => {"
        "  const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })"), \
        "the field and its error in view"
    screenshot(driver, shot_path("destroy-mistyped.png", tmp_path))
    assert _status(driver) == "CREATE_COMPLETE", "nothing destroyed"


def test_the_list_fits_a_phone_with_its_size_and_actions(site, tmp_path):
    driver, server = site
    driver.get(f"{server.url}/web/deployments")
    driver.set_window_size(390, 844)
    try:
        wide = driver.execute_script("return document.documentElement.scrollWidth")
        seen = driver.execute_script("return document.documentElement.clientWidth")
        assert wide <= seen, f"no sideways scrolling at a phone's width ({wide} > {seen})"
        row = _row(driver, "beta")
        assert "3 machines" in row and "Open" in row and "Destroy" in row, row
        screenshot(driver, shot_path("list-phone.png", tmp_path))
    finally:
        driver.set_window_size(1280, 900)


def _cards(driver) -> list[str]:
    return [h.text for h in driver.find_elements("css selector", "#cards .card h2")]


def test_the_catalogue_filters_with_and_without_javascript(site, tmp_path):
    driver, server = site
    driver.get(f"{server.url}/web/catalogue")
    driver.execute_script("window.notReloaded = true")
    assert _cards(driver) == ["Boxes", "Long names", "Cloud boxes"], "what can be deployed here first"
    driver.find_element("id", "q").send_keys("teach")  # a tag
    wait_for(driver, lambda d: _cards(d) == ["Boxes"], message="the cards filtered as one types")
    assert "q=teach" in driver.current_url, "a reload or a shared link keeps the filter"
    assert text_of(driver, "#shown") == "1 of 3 templates, matching “teach”"
    driver.find_element("id", "q").clear()
    driver.find_element("css selector", "input[name=show][value=here]").click()
    wait_for(driver, lambda d: _cards(d) == ["Boxes", "Long names"], message="only what is deployable here")
    assert _same_page(driver)
    screenshot(driver, shot_path("catalogue-filter.png", tmp_path))

    with scripts_off(driver):  # the same filter through the form's query parameters
        driver.get(f"{server.url}/web/catalogue")
        assert _cards(driver) == ["Boxes", "Long names", "Cloud boxes"]
        box = driver.find_element("id", "q")
        box.send_keys("CLOUD")  # by name, whatever the case
        box.submit()
        wait_for(driver, lambda d: "q=CLOUD" in d.current_url, message="the form sent")
        assert _cards(driver) == ["Cloud boxes"]
        driver.find_element("css selector", "input[name=show][value=here]").click()
        driver.find_element("css selector", "#catalogue-filter button[type=submit]").click()
        wait_for(driver, lambda d: "show=here" in d.current_url, message="the form sent again")
        assert _cards(driver) == [] and "No template matches" in text_of(driver, "#cards")


def test_graph_text_stays_inside_its_boxes(site, hold_file, tmp_path):
    driver, server = site

    def spills(d) -> list[str]:
        return d.execute_script("""
            const out = [];
            document.querySelectorAll('svg.graph .node').forEach((g) => {
              const box = g.querySelector('rect').getBoundingClientRect();
              g.querySelectorAll('text').forEach((t) => {
                const r = t.getBoundingClientRect();
                if (r.left < box.left || r.right > box.right || r.top < box.top || r.bottom > box.bottom)
                  out.push(`${t.textContent} (${Math.round(r.width)} px wide in ${Math.round(box.width)})`);
              });
            });
            return out;""")

    seen: set[str] = set()

    def measured(d) -> list[str]:  # what the node's state lines say, its text measured each time
        assert spills(d) == []
        kinds = [t.text for t in d.find_elements("css selector", "svg.graph .node-kind")]
        seen.update(kinds)
        return kinds

    with held(hold_file):  # half-way, for as long as the test looks: none of the 11 made yet
        _create(server, "long-one", "long", "slow")
        driver.get(f"{server.url}/web/deployments/long-one")
        driver.execute_script("window.notReloaded = true")
        element(driver, "svg.graph .node")
        # (as many as the engine makes at a time are listed, the rest once those are made)
        wait_for(driver, lambda d: any(re.fullmatch(r"creating · 0( of |/)\d+ ready", t) for t in measured(d)),
                 message="long-one's picture half-way: its machines being made, none ready")
        assert _status(driver) != "CREATE_COMPLETE"

    def measured_until_made(d) -> bool:  # measured at every poll while the script rewrites the states and counts
        measured(d)
        return _status(d) == "CREATE_COMPLETE" and "11/11 ready" in text_of(d, "svg.graph")

    wait_for(driver, measured_until_made, 300, "long-one made once released, its picture measured all along")
    assert any("ready" in t and "11/11" not in t for t in seen), f"measured while in progress too: {seen}"
    assert spills(driver) == []
    assert _same_page(driver), "the finished picture is the script's, drawn over the half-way one"
    names = [t.text for t in driver.find_elements("css selector", "svg.graph .node-name")]
    assert all(n.endswith("…") for n in names), names
    titles = driver.execute_script("return Array.from(document.querySelectorAll('svg.graph .node > title'))"
                                   ".map((t) => t.textContent)")
    assert any(t.startswith("worker_nodes_of_the_analysis_facility_in_bologna_mmm:") for t in titles), \
        "the whole name in the node's tooltip"
    screenshot(driver, shot_path("graph-long-names.png", tmp_path))


#: the text a user must read on coloured or bordered things: badges, states, buttons, and what the list adds
TEXT = (".status, .state-badge, .pending-work, .badge-unfit, .why, .why-not, .size-detail, .blocked, "
        ".button:not(.disabled), .copied, .category, caption, .meta, .muted, .field-error")


def _every_badge(driver, where: str) -> None:
    """Put one badge of every status and state class the stylesheet colours into `where`
    (an element of the page), as the pages draw them, so that states this test did not
    bring about are measured on the page's own background too."""
    driver.execute_script("""
        const where = document.querySelector(arguments[0]);
        const names = new Set();
        for (const sheet of document.styleSheets) for (const rule of sheet.cssRules) {
          for (const m of (rule.selectorText || '').matchAll(/\\.(status-[A-Z_]+|state-[a-z]+|elastic-[a-z]+)/g))
            names.add(m[1]);
        }
        for (const n of names) {
          const s = document.createElement('span');
          s.className = (n.startsWith('status-') ? 'status ' : 'state-badge ') + n;
          s.textContent = n;
          where.append(s, ' ');
        }""", where)


#: the graph's text (its fill) over its box (the rect's fill), the node drawn once in every state
#: the stylesheet colours
GRAPH_CONTRAST_JS = COLOUR_JS + """
const node = document.querySelector('svg.graph .node');
const states = new Set(['pending']);
for (const sheet of document.styleSheets) for (const rule of sheet.cssRules)
  for (const m of (rule.selectorText || '').matchAll(/\\.node\\.state-([a-z]+)/g)) states.add(m[1]);
const out = [];
for (const st of states) {
  const copy = node.cloneNode(true);
  copy.setAttribute('class', `node state-${st}`);
  node.parentNode.append(copy);
  const box = parse(getComputedStyle(copy.querySelector('rect')).fill);
  copy.querySelectorAll('text').forEach((t) => {
    const fg = over(parse(getComputedStyle(t).fill), box);
    out.push({text: t.textContent, cls: `${st} ${t.getAttribute('class')}`, ratio: ratio(fg, box)});
  });
  copy.remove();
}
return out;
"""


def test_badges_and_buttons_meet_aa_contrast(site, tmp_path):
    driver, server = site
    low: list[dict[str, Any]] = []
    for page, sample_in in (("/web/deployments?destroyed=1", "#list tbody td"), ("/web/catalogue", ".card"),
                            ("/web/deployments/beta", "#instances tbody td"),
                            ("/web/deployments/alpha", ".destroyed-note")):
        driver.get(server.url + page)
        element(driver, sample_in)
        _every_badge(driver, sample_in)
        measured = contrasts(driver, TEXT)
        assert len(measured) > 10, (page, measured)
        low += [{**m, "page": page} for m in measured if m["ratio"] < 4.5]
    driver.get(f"{server.url}/web/deployments/beta")
    graph = driver.execute_script(GRAPH_CONTRAST_JS)
    assert {m["cls"].split()[0] for m in graph} >= {"pending", "error", "creating", "configured", "deleted"}, graph
    low += [{**m, "page": "the graph"} for m in graph if m["ratio"] < 4.5]
    assert low == [], "text under WCAG AA's 4.5:1: " + "; ".join(
        f"{m['page']} {m['cls']} {m['text']!r} {m['ratio']:.2f}" for m in low)

