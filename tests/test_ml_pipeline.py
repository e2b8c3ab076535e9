"""The course's machine-learning pipeline, for real: `dodas up templates/ml-pipeline.yaml`
on this machine deploys a Spark cluster with JupyterLab and the inference service,
then its pipeline node generates a CMS-like access log (Avro), pre-processes it with
a PySpark job on the deployed cluster, trains a Keras model, uploads it and checks a
prediction. The test recomputes one row of features from the Avro records itself,
evaluates the trained model itself and compares both with what the service answers;
then `up` again with a new data set retrains while predictions keep being answered;
destroy leaves nothing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import fastavro
import numpy as np
import pytest
from support.livecluster import Dodas, kill_leftovers, need_java, processes_of, run_notebook_cell
from support.paths import ROOT

#: the hang guard, above what a test here needs on a busy machine: Spark deployed and a training job run on it
pytestmark = pytest.mark.timeout(1800)

TEMPLATE = str(ROOT / "templates" / "ml-pipeline.yaml")
SCRIPTS = ROOT / "src" / "dodas" / "configure" / "roles" / "ml_pipeline" / "files"
NAME = "ml"
WEEK = 7 * 86400
TIERS = ["AOD", "MINIAOD", "NANOAOD", "RAW"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    need_java()
    d = Dodas(tmp_path_factory.mktemp("home"))
    d.run("up", TEMPLATE, "--name", NAME, timeout=1200)
    yield d
    d.run("destroy", NAME, "--yes", check=False)
    kill_leftovers(d.home)


def pipeline_dir(d: Dodas) -> Path:
    found = list((d.home / "data" / "local").glob("*/master_host-0/pipeline/pipeline"))
    assert len(found) == 1, found
    return found[0]


def post(url: str, body: dict, token: str | None) -> object:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def features_by_hand(data: Path, dataset: str, week: int) -> tuple[list[float], int]:
    """One row of features and its label, from the Avro records, without Spark."""
    recs = {}
    for f in sorted(data.glob("*.avro")):
        with f.open("rb") as fh:
            for r in fastavro.reader(fh):
                recs.setdefault(r["unique_id"], r)
    clean = [r for r in recs.values() if r["read_bytes"] is not None and r["read_bytes"] >= 0
             and r["file_size"] > 0 and r["end_time"] >= r["start_time"]]
    first = min(r["start_time"] for r in clean)
    mine = [r for r in clean if r["dataset"] == dataset]
    this = [r for r in mine if (r["start_time"] - first) // WEEK == week]
    after = [r for r in mine if (r["start_time"] - first) // WEEK == week + 1]
    n = len(this)
    x = [n, len({r["user_dn_hash"] for r in this}), len({r["site"] for r in this}),
         math.log1p(sum(r["read_bytes"] for r in this)),
         sum(min(r["read_bytes"] / r["file_size"], 1.0) for r in this) / n,
         math.log1p(sum(r["end_time"] - r["start_time"] for r in this) / n),
         sum(r["is_remote"] for r in this) / n, sum(r["exit_code"] != 0 for r in this) / n]
    tier = dataset.rsplit("/", 1)[1]
    return x + [1.0 if tier == t else 0.0 for t in TIERS], int(len(after) >= 20)


def test_up_serves_the_model_and_prints_a_prediction(deployed):
    outs = deployed.outputs(NAME)
    assert outs["model"] == "popularity v1"
    assert outs["model_url"].startswith("http://127.77.") and outs["model_url"].endswith(":8083/json")
    probs = outs["sample_prediction"]["probabilities"]
    assert set(probs) == {"not_popular", "popular"} and abs(sum(probs.values()) - 1) < 1e-5
    assert set(outs["stages"]) >= {"generate", "spark", "train", "upload", "serve"}
    assert 0.5 < outs["accuracy"] <= 1.0
    assert outs["inference_token"] == "********"
    printed = deployed.run("outputs", NAME).stdout
    assert "sample_prediction" in printed and "popular" in printed


def test_the_features_came_from_the_deployed_cluster(deployed):
    """The job ran on the deployment's master with its two workers' executors (not
    Spark's local mode), and every record was read: the synthetic log's count."""
    master = json.load(urllib.request.urlopen(deployed.outputs(NAME)["jupyter_url"].split(":8888")[0] + ":8080/json/",
                                              timeout=10))
    apps = [a for a in master["completedapps"] if a["name"] == "dodas-ml-pipeline-features"]
    assert len(apps) == 1
    p = pipeline_dir(deployed)
    stage = json.loads((p / "stages" / "features.json").read_text())
    data = json.loads((p / "stages" / "data.json").read_text())
    assert stage["executors"] == 2
    assert stage["records"] == data["records"] and 0 < stage["dropped"] < 0.05 * stage["records"]


def test_a_prediction_matches_the_model_evaluated_here(deployed):
    """A row recomputed from the Avro records in this test equals the Spark job's row;
    the service's prediction for it equals the trained model's, run in this process."""
    import keras

    p = pipeline_dir(deployed)
    table = json.loads((p / "work" / "features.json").read_text())
    row = next(r for r in table["rows"] if r["y"] == 1)  # a popular one, the rarer class
    data = Path(json.loads((p / "stages" / "data.json").read_text())["path"])
    x, y = features_by_hand(data, row["dataset"], row["week"])
    assert np.allclose(x, row["x"], rtol=1e-9, atol=1e-9) and y == row["y"]

    outs = deployed.outputs(NAME, secrets=True)
    got = post(outs["model_url"] + "?labels=true", {"keys": table["features"], "values": x, "model": "popularity"},
               outs["inference_token"])
    model = keras.models.load_model(p / "models" / "v1" / "model.keras")
    want = np.asarray(model(np.array([x], dtype=np.float32)))[0]
    assert [g["label"] for g in got] == ["not_popular", "popular"]
    assert np.allclose([g["probability"] for g in got], want, atol=1e-4)
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(outs["model_url"], {"values": x, "model": "popularity"}, None)
    assert refused.value.code == 401


def test_the_notebook_runs_the_same_steps_in_jupyterlab(deployed):
    outs = deployed.outputs(NAME, secrets=True)
    base = outs["jupyter_url"].split("/lab")[0]
    req = urllib.request.Request(base + "/api/contents/ml-pipeline.ipynb",
                                 headers={"Authorization": f"token {outs['jupyter_token']}"})
    nb = json.load(urllib.request.urlopen(req, timeout=30))["content"]
    text = json.dumps(nb)
    assert outs["inference_token"] not in text and outs["jupyter_token"] not in text
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    printed = run_notebook_cell(base, outs["jupyter_token"], code + "\nprint('NOTEBOOK DONE')", timeout=600)
    assert "'label': 'popular'" in printed and "NOTEBOOK DONE" in printed
    assert post(outs["model_url"], {"values": [0.0] * 12, "model": "popularity-notebook"}, outs["inference_token"])


def test_no_secret_in_logs_events_or_files(deployed):
    outs = deployed.outputs(NAME, secrets=True)
    secrets = [outs["inference_token"].encode(), outs["jupyter_token"].encode()]
    p = pipeline_dir(deployed)
    assert oct((p / "token").stat().st_mode & 0o777) == "0o600"
    events = deployed.run("logs", NAME).stdout.encode()
    for f in [*(deployed.home / "logs").rglob("*"), *p.rglob("*.json"), *p.rglob("*.ipynb")]:
        if f.is_file():
            data = f.read_bytes()
            assert not any(s in data for s in secrets), f
    assert not any(s in events for s in secrets)
    for cmd in processes_of(deployed.home).values():
        assert not any(s.decode() in cmd for s in secrets)


def test_up_with_new_data_retrains_without_downtime(deployed, tmp_path):
    """A new data set (another week's log, another seed): `up` reruns the pipeline only;
    the training continues from v1; predictions asked all along never fail."""
    new = tmp_path / "new-data"
    subprocess.run([sys.executable, str(SCRIPTS / "accesslog.py"), str(new), "--records", "40000", "--seed", "2"],
                   check=True, capture_output=True)
    outs = deployed.outputs(NAME, secrets=True)
    before = deployed.json("status", NAME)
    pids = {i["id"]: {s["pid"] for s in (i.get("services") or {}).values()} for i in before["instances"]}
    answers, failures, stop = [], [], threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                answers.append(post(outs["model_url"], {"values": [5.0] * 12, "model": "popularity"},
                                    outs["inference_token"]))
            except Exception as exc:  # noqa: BLE001 - any failure is what the test counts
                failures.append(repr(exc))
            time.sleep(0.05)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    try:
        plan = deployed.run("plan", TEMPLATE, "--name", NAME, "--input", f"dataset={new}").stdout
        assert "pipeline[0]" in plan and "1 to reconfigure" in plan, plan
        deployed.run("up", TEMPLATE, "--name", NAME, "--input", f"dataset={new}", timeout=1200)
    finally:
        stop.set()
        asker.join(timeout=30)
    assert not failures, failures[:3]
    assert len({json.dumps(a) for a in answers}) >= 2  # the model changed under the asking thread
    after = deployed.outputs(NAME)
    assert after["model"] == "popularity v2"
    p = pipeline_dir(deployed)
    metrics = json.loads((p / "models" / "v2" / "metrics.json").read_text())
    assert metrics["continued"] is True and metrics["accuracy_before"] is not None
    data = json.loads((p / "stages" / "data.json").read_text())
    assert data["path"] == str(new) and data["generated"] is False
    listing = urllib.request.Request(outs["model_url"].removesuffix("/json") + "/models",
                                     headers={"Authorization": f"Bearer {outs['inference_token']}"})
    params = json.load(urllib.request.urlopen(listing, timeout=30))
    desc = [m for m in params if m["name"] == "popularity"][0]["description"]
    assert "version 2" in desc and "continued" in desc
    now = deployed.json("status", NAME)
    for inst in now["instances"]:  # the cluster and the service were left running as they were
        if inst["id"] in pids and pids[inst["id"]]:
            assert {s["pid"] for s in (inst.get("services") or {}).values()} == pids[inst["id"]], inst["id"]


def test_a_missing_data_set_is_named(deployed, tmp_path):
    r = deployed.run("up", TEMPLATE, "--name", NAME, "--input", f"dataset={tmp_path / 'nowhere'}", check=False,
                     timeout=1200)
    assert r.returncode != 0
    assert str(tmp_path / "nowhere") in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    assert deployed.outputs(NAME)["model"] == "popularity v2"  # the served model is still the last good one


def test_destroy_leaves_nothing(deployed):
    p = pipeline_dir(deployed)
    deployed.run("destroy", NAME, "--yes")
    assert not processes_of(deployed.home)
    assert not p.exists()
