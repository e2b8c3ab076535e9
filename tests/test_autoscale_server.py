"""Elasticity inside `dodas server`: the server's own autoscaler loop (leased
in the state database) scales an elastic Spark deployment made through the
API, for real on the local provider, its workers are disabled, enabled and
drained by hand through the REST API, the remote CLI and the dashboard (a real
browser), and a policy whose maximum would exceed the caller's quota is
refused with a located message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from support import serverproc
from support.browser import need_chromium
from support.livecluster import Dodas, kill_leftovers, need_java
from support.server import boxes
from support.spark import APP, ELASTIC, NAME, TIMEOUT_S, spark_client_env


GROWING_BOXES = boxes(cpus=1, max_instances=9)


def test_a_policy_whose_maximum_exceeds_the_quota_is_refused_where_it_says_so(serve):
    server = serve(user_quota={"instances": 4})
    r = server.as_("alice").post("/api/v1/deployments", json={"name": "growing", "template": GROWING_BOXES,
                                                              "template_name": "growing.yaml"})
    assert r.status_code == 422, r.text
    diags = r.json()["error"]["diagnostics"]
    where = GROWING_BOXES.splitlines().index(next(x for x in GROWING_BOXES.splitlines() if "max_instances" in x)) + 1
    assert [(d["file"], d["line"]) for d in diags] == [("growing.yaml", where)], diags
    assert "max_instances 9" in diags[0]["message"] and "quota of 4 machines" in diags[0]["message"]
    assert server.as_("alice").get("/api/v1/deployments/growing").status_code == 404, "nothing was made"


@pytest.fixture()
def spark_server(tmp_path):
    need_java()
    home = tmp_path / "server-home"
    env = {**os.environ, "DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1", "DODAS_SERVER_ALLOW_LOCAL": "1",
           "DODAS_SERVER_LEASE_SECONDS": "10"}
    env.pop("DODAS_DB_URL", None)
    log = tmp_path / "server.log"
    proc, url = serverproc.start(env, log)
    yield url, home, log
    serverproc.stop(proc)
    kill_leftovers(home)


@pytest.mark.timeout(2400)  # a Spark up, the server's autoscaler rounds and a destroy
def test_the_server_autoscales_an_elastic_deployment(spark_server, tmp_path):
    need_chromium()
    url, home, log = spark_server
    laptop = Dodas(tmp_path / "laptop")
    laptop.env["DODAS_SERVER"] = url
    laptop.run("up", ELASTIC, "--name", NAME, "-i", "idle_time=8", "-i", "max_workers=2", "-i", "cooldown=2",
               "--yes", "--quiet", timeout=900)

    def status() -> dict:
        r = laptop.run("status", NAME, "--json", check=False)
        assert r.returncode in (0, 5), r.stderr + log.read_text()[-3000:]
        return json.loads(r.stdout)

    deadline = time.monotonic() + 60
    while not (status().get("elastic") or {}).get("autoscaler"):
        assert time.monotonic() < deadline, f"no autoscaler took the deployment\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    assert "#autoscale" in status()["elastic"]["autoscaler"]
    refused = laptop.run("autoscale", NAME, "--once", check=False)
    assert refused.returncode != 0 and "workers autoscale" in refused.stderr

    conf = tmp_path / "conf"  # the client's configuration, as `dodas spark-conf` on the server's machine writes it
    Dodas(home).run("spark-conf", NAME, "-o", str(conf))
    app = subprocess.run([sys.executable, "-c", APP], env=spark_client_env(conf), capture_output=True, text=True,
                         timeout=600)
    assert app.returncode == 0, app.stderr[-3000:]
    assert "EXECUTORS 2" in app.stdout and "RESULT 332833500" in app.stdout

    deadline = time.monotonic() + TIMEOUT_S
    while True:
        st = status()
        reasons = [d["reason"] for d in st["elastic"]["decisions"]]
        if any("removing" in r for r in reasons) and st["elastic"]["current"] == 1:
            break
        assert time.monotonic() < deadline, (reasons, log.read_text()[-3000:])
        time.sleep(1)
    # the addition: in the events (status shows the latest decisions only, which more polls
    # on a busy machine may have moved past it)
    events = httpx.get(f"{url}/api/v1/deployments/{NAME}/events", timeout=30).json()["items"]
    assert any(e["phase"] == "autoscale" and "adding" in e["message"] for e in events)
    # the dashboard's page shows each worker's state and the decisions (the local operator's
    # session: this server has no issuers)
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as web:
        page = web.get("/web/login", params={"next": f"/web/deployments/{NAME}"})
    assert page.status_code == 200, page.text[-2000:]
    elastic = page.text.split('id="elastic"', 1)[1].split("</section>", 1)[0]
    left = [i["id"] for i in status()["elastic"]["nodes"]]
    assert left and all(f'data-instance="{i}"' in elastic for i in left), elastic
    assert "Recent decisions" in elastic and ("removing" in elastic or "adding" in elastic), elastic
    assert any(f"elastic-{state}" in elastic for state in ("idle", "used", "booting", "draining")), elastic

    _control_by_hand(url, home, laptop, status, left[0], log)
    laptop.run("destroy", NAME, "--yes", "--quiet", timeout=600)
    gone = httpx.post(f"{url}/api/v1/deployments/{NAME}/elastic", json={"action": "enable", "instance": left[0]},
                      timeout=30)
    assert gone.status_code == 409 and "destroyed" in gone.json()["error"]["message"], gone.text


def _control_by_hand(url: str, home, laptop: Dodas, status, inst: str, log) -> None:
    """Disable, enable and drain one worker through each face of the one operation
    (services/autoscale_control.py): the remote CLI, the REST API, the dashboard's
    buttons in a real browser; the refusals located."""
    from support.browser import chrome, element, wait_for
    from support.waiting import wait_until

    api = httpx.Client(base_url=url, timeout=60)
    bad = api.post(f"/api/v1/deployments/{NAME}/elastic", json={"action": "disable", "instance": "worker_hosts[99]"})
    assert bad.status_code == 422 and f"its instances: {inst}" in bad.json()["error"]["message"], bad.text
    bad = api.post(f"/api/v1/deployments/{NAME}/elastic", json={"action": "freeze", "instance": inst})
    assert bad.status_code == 422 and "disable, enable, drain" in bad.json()["error"]["message"], bad.text
    assert api.post("/api/v1/deployments/nobody/elastic",
                    json={"action": "disable", "instance": inst}).status_code == 404
    # the remote CLI answers as the server's own local CLI does (a refusal, word for word)
    there = laptop.run("autoscale", NAME, "--drain", "worker_hosts[99]", check=False)
    here = Dodas(home).run("autoscale", NAME, "--drain", "worker_hosts[99]", check=False)
    assert (there.returncode, there.stderr) == (here.returncode, here.stderr) and there.returncode == 1, \
        (there.stderr, here.stderr)

    said = laptop.run("autoscale", NAME, "--disable", inst).stdout
    assert f"{inst} disabled" in said and "no new work" in said, said

    def state() -> str | None:
        return next((n["state"] for n in status()["elastic"]["nodes"] if n["id"] == inst), None)
    assert state() == "disabled", status()["elastic"]

    driver = chrome()
    try:
        driver.get(f"{url}/web/login?next=/web/deployments/{NAME}")
        element(driver, f'#elastic-nodes tr[data-instance="{inst}"] button[value="enable"]').click()
        said = wait_for(driver, lambda d: "enabled" in (t := element(d, "#elastic-said").text) and t,
                        message="the enable's answer")
        assert inst in said and "replaced" in said, said  # a decommissioned Spark worker takes no work again
    finally:
        driver.quit()
    assert state() != "disabled", status()["elastic"]

    # the server's autoscaler replaces it (a new machine; it may take the lowest free index, the same
    # id); the new worker is then drained and removed by hand
    def machine(i: str) -> str | None:
        return next((x.get("provider_id") for x in status()["instances"] if x["id"] == i), None)
    old = machine(inst)

    def replaced() -> str | None:
        return next((n["id"] for n in status()["elastic"]["nodes"] if n["state"] in ("idle", "used")
                     and machine(n["id"]) not in (None, old)), None)
    new = wait_until(replaced, f"{inst} replaced by a working worker ({log})", timeout=TIMEOUT_S)
    done = api.post(f"/api/v1/deployments/{NAME}/elastic", json={"action": "drain", "instance": new})
    assert done.status_code == 200 and "drained and removed" in done.json()["said"], done.text
    gone = machine(new)
    wait_until(lambda: all(machine(n["id"]) != gone for n in status()["elastic"]["nodes"]),
               f"{new} drained and removed ({log})", timeout=TIMEOUT_S)
    events = api.get(f"/api/v1/deployments/{NAME}/events", params={"limit": 10_000}).json()["items"]
    assert any(e["phase"] == "autoscale" and "as asked by hand" in e["message"] and new in e["message"]
               for e in events), [e["message"] for e in events if e["phase"] == "autoscale"][-10:]
    # the minimum's new worker up before the destroy (a destroy during the autoscaler's apply in the
    # same server process would be refused by the deployment's lock, which names the thread)
    wait_until(lambda: status()["status"] == "UPDATE_COMPLETE" and any(
        n["state"] in ("idle", "used") for n in status()["elastic"]["nodes"]), f"a working worker ({log})",
        timeout=TIMEOUT_S)
