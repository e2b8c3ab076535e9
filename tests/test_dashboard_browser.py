"""The dashboard in a real browser (Debian's Chromium, headless, through
Selenium): a person logs in at the development issuer, deploys the Spark +
Jupyter template from the catalogue form on the local provider (the operator
allowed it for this server), watches it reach CREATE_COMPLETE without a
reload, opens JupyterLab with the token revealed on the page, scales the
workers to 3 after seeing the plan, and destroys it by typing its name; no
process is left. Bad values in the form get the page's messages and, past the
page, the server's, next to the fields.

With DODAS_SCREENSHOTS set, the screenshots refresh docs/screenshots/.
"""

from __future__ import annotations

import json
import time

import pytest
from support import serverproc
from support.browser import chrome, element, login, need_chromium, screenshot, shot_path, text_of, wait_for
from support.issuer import running_issuer
from support.livecluster import kill_leftovers, need_java, processes_of
from support.server import clean_env

#: the hang guard, above what a test here needs on a busy machine: Spark deployed through the dashboard, then destroyed
pytestmark = pytest.mark.timeout(1800)


DEPLOY_TIMEOUT_S = 900.0


@pytest.fixture()
def site(tmp_path):
    need_chromium()
    need_java()
    port = serverproc.free_port()
    config = {"audience": "dodas",
              "users": [{"username": "alice", "password": "alice-pw", "groups": ["/physics"]}],
              "clients": [{"client_id": "dodas-dashboard", "redirect_uris": [f"http://127.0.0.1:{port}/web/callback"]}]}
    with running_issuer(tmp_path, config) as issuer:
        home = tmp_path / "server-home"
        home.mkdir()
        conf = tmp_path / "server.json"
        conf.write_text(json.dumps({"issuers": [{"url": issuer.url, "audience": "dodas"}], "allow_local": True,
                                    "default_providers": ["local"], "workers": 1}))
        log = tmp_path / "server.log"
        proc, url = serverproc.start(clean_env(home), log, "--config", str(conf), cwd=home, port=port)
        driver = chrome(1280, 900)
        yield driver, url, home, log
        driver.quit()
        serverproc.stop(proc)
    kill_leftovers(home)


def _status(driver) -> str:
    """The status shown, or "" while the page is being replaced (a form was sent)."""
    from selenium.common.exceptions import WebDriverException
    try:
        return driver.find_element("id", "status").text
    except WebDriverException:  # no such element yet, stale, or "does not belong to the document"
        return ""


def _field_error(driver, name: str) -> str:
    return driver.find_element("id", f"in-{name}-err").text


def _set(driver, name: str, value: str) -> None:
    box = driver.find_element("id", f"in-{name}")
    box.clear()
    box.send_keys(value)


def _submit(driver, name: str) -> None:
    """Send the form with Enter in a field, as one does (a click may land where a
    message just moved the button)."""
    from selenium.webdriver.common.keys import Keys
    driver.find_element("id", f"in-{name}").send_keys(Keys.ENTER)


def test_deploy_follow_reveal_scale_and_destroy_spark_in_the_browser(site, tmp_path):
    driver, url, home, log = site
    login(driver, url, "alice", "alice-pw")
    assert "Deployments" in driver.title and "alice" in text_of(driver, ".who")

    driver.get(url + "/web/catalogue")
    screenshot(driver, shot_path("catalogue.png", tmp_path))
    element(driver, "a[href='/web/catalogue/spark-jupyter']").click()
    wait_for(driver, lambda d: d.find_elements("id", "in-number_of_workers"), message="the deploy form")
    assert driver.find_element("id", "in-number_of_workers").get_attribute("value") == "2", "defaults filled in"
    assert driver.find_element("id", "in-number_of_workers").get_attribute("min") == "1", "bounds from constraints"

    # the page checks first
    _set(driver, "number_of_workers", "0")
    driver.find_element("css selector", "form[data-check] button[type=submit]").click()
    assert "at least 1" in _field_error(driver, "number_of_workers")
    assert "/web/catalogue/spark-jupyter" in driver.current_url, "nothing was sent"
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, shot_path("deploy-form-errors.png", tmp_path))

    # past the page, the server checks everything again, and says where
    driver.execute_script("document.querySelector('form[data-check]').dataset.nocheck = '1'")
    _set(driver, "worker_mem", "lots")
    _submit(driver, "worker_mem")
    wait_for(driver, lambda d: "Outside the template's bounds" in _field_error(d, "number_of_workers"),
             message="the server's message next to the count (in the words of the field's bounds)")
    assert "scalar-unit.size" in _field_error(driver, "worker_mem") and "lots" in _field_error(driver, "worker_mem")

    _set(driver, "number_of_workers", "2")
    _set(driver, "worker_mem", "1 GiB")
    _set(driver, "name", "spark-web")
    _submit(driver, "name")
    wait_for(driver, lambda d: d.find_elements("id", "confirm"), message="the plan page")
    summary = text_of(driver, ".summary")
    assert "7 to create" in summary.replace("\n", " "), summary
    assert "local" in text_of(driver, ".lead")
    screenshot(driver, shot_path("plan.png", tmp_path))
    driver.find_element("id", "confirm").click()

    # followed live: the page is never reloaded (the marker would be gone)
    wait_for(driver, lambda d: d.current_url.endswith("/web/deployments/spark-web"), message="the deployment page")
    driver.execute_script("window.dodasMarker = 'same page'")
    wait_for(driver, lambda d: _status(d) in ("CREATE_COMPLETE", "CREATE_FAILED"), DEPLOY_TIMEOUT_S,
             "the deployment to complete, seen live")
    assert _status(driver) == "CREATE_COMPLETE", log.read_text()[-3000:]
    assert driver.execute_script("return window.dodasMarker") == "same page", "the page was not reloaded"
    nodes = {g.get_attribute("data-node"): g.get_attribute("class")
             for g in driver.find_elements("css selector", "svg.graph .node")}
    assert nodes and all("state-configured" in c or "state-started" in c or "state-created" in c
                         for c in nodes.values()), nodes
    wait_for(driver, lambda d: "everything" in text_of(d, "#log") or "complete" in text_of(d, "#log"),
             message="the log followed live")
    assert "dodas_report" not in text_of(driver, "#log"), "no internal step names in the log"
    screenshot(driver, shot_path("deployment.png", tmp_path))

    # JupyterLab: the link, and the token revealed on request, then masked again
    link = driver.find_element("css selector", "dd[data-output='jupyter_url'] a").get_attribute("href")
    token_box = driver.find_element("css selector", "dd[data-output='jupyter_token'] .secret")
    assert token_box.text == "********"
    driver.find_element("css selector", "dd[data-output='jupyter_token'] button").click()
    wait_for(driver, lambda d: token_box.text != "********", message="the token revealed")
    token = token_box.text
    assert len(token) >= 16
    driver.find_element("css selector", "dd[data-output='jupyter_token'] button").click()
    wait_for(driver, lambda d: token_box.text == "********", message="the token masked again")
    assert token not in driver.page_source

    main = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.get(link)
    wait_for(driver, lambda d: d.find_elements("css selector", "input[type=password]"),
             message="JupyterLab's login page")
    box = driver.find_element("css selector", "input[type=password]")
    box.send_keys(token)
    box.submit()
    wait_for(driver, lambda d: "/lab" in d.current_url and "login" not in d.current_url,
             message="JupyterLab, logged in with the token")
    driver.close()
    driver.switch_to.window(main)

    # scale the workers to 3, with the plan shown first
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("id", "scale-node")).select_by_value("worker_hosts")
    count = driver.find_element("id", "scale-count")
    count.clear()
    count.send_keys("3")
    driver.find_element("css selector", "#scale-form button").click()
    wait_for(driver, lambda d: d.find_elements("id", "confirm"), message="the scaling's plan")
    assert "worker_hosts[2]" in text_of(driver, "table.changes")
    driver.find_element("id", "confirm").click()
    wait_for(driver, lambda d: d.current_url.endswith("/web/deployments/spark-web"), message="back on the page")
    driver.execute_script("window.dodasMarker = 'scaling'")
    wait_for(driver, lambda d: d.find_elements("css selector", "tr[data-instance='worker_hosts[2]']")
             or d.find_elements("css selector", "#requests .request-failed"), DEPLOY_TIMEOUT_S,
             "the third worker shown live")
    assert not driver.find_elements("css selector", "#requests .request-failed"), text_of(driver, "#requests")
    wait_for(driver, lambda d: _status(d) in ("UPDATE_COMPLETE", "UPDATE_FAILED"), DEPLOY_TIMEOUT_S,
             "the scaling to complete")
    assert _status(driver) == "UPDATE_COMPLETE", log.read_text()[-3000:]
    assert driver.execute_script("return window.dodasMarker") == "scaling"

    # on a phone's screen
    driver.set_window_size(390, 844)
    screenshot(driver, shot_path("deployment-phone.png", tmp_path))
    driver.set_window_size(1280, 900)

    driver.get(url + "/web/deployments")
    assert "UPDATE_COMPLETE" in text_of(driver, "table.list")
    screenshot(driver, shot_path("deployments.png", tmp_path))
    driver.get(url + "/web/deployments/spark-web")

    # destroy, the name typed to confirm
    driver.find_element("id", "confirm-name").send_keys("spark-web")
    driver.find_element("css selector", "#destroy-form button").click()
    wait_for(driver, lambda d: _status(d) in ("DELETE_COMPLETE", "DELETE_FAILED"), DEPLOY_TIMEOUT_S,
             "the deployment destroyed")
    assert _status(driver) == "DELETE_COMPLETE"
    deadline = time.monotonic() + 60
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_of(home), processes_of(home)
    assert token not in log.read_text(), "no token in the server's log"
