"""TFaaS's clients against dodas's inference service over HTTPS with client
certificates, as CMS users run them with their grid proxies. The requests are
TFaaS's Python client's (src/python/tfaas_client.py of vkuznet/TFaaS), rebuilt
byte for byte in tests/support/tfaas_requests.py because that client is not on
PyPI and does not import on Python 3; see that module for the one deliberate
difference (TLS 1.2+ instead of the client's pinned TLS 1.0). The CA, the
server's certificate and the users' proxies are made by the test.

What a user of those clients relies on: a certificate whose DN is allowed may
upload and delete, another is refused (403) but may read; nothing at all is
refused (401); the last upload answers predictions naming no model; a bundle made
as TFaaS's README makes it (no params.json) is served with params derived from
the model; /image answers the top five by probability on raw pixel values;
deleting a missing model is 200; /status measures the service's CPU."""

from __future__ import annotations

import io
import json
import ssl
import subprocess
import sys
import tarfile
import urllib.error

import httpx
import numpy as np
import pytest
from support import tfaas_requests as tfaas
from support.inference import AUTH, LABELS, SAMPLE, start_server
from support.serverproc import stop
from support.x509ca import TestCA

ALICE = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=alice/CN=123456/CN=Alice Analyst"
BOB = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=bob/CN=654321/CN=Bob Other"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The service on HTTPS, alice's DN (written RFC 4514 style in the allow-list file) a writer."""
    tmp = tmp_path_factory.mktemp("tfaas-tls")
    ca = TestCA(tmp)
    cert, key = ca.server()
    rfc4514 = ",".join(reversed(ALICE.strip("/").split("/")))
    (tmp / "writers").write_text(f"# who may upload\n{rfc4514}\n")
    proc, url = start_server(tmp, "--tls-cert", str(cert), "--tls-key", str(key), "--client-ca", str(ca.pem),
                             "--writer-dns-file", str(tmp / "writers"), https_ca=ca.pem)
    yield {"url": url, "ca": ca.pem, "alice": ca.client(ALICE, "alice.pem"), "bob": ca.client(BOB, "bob.pem"),
           "tmp": tmp, "log": tmp / "server.log", "verify": ssl.create_default_context(cafile=str(ca.pem))}
    stop(proc)


@pytest.fixture(scope="module")
def upload_dir(tls, trained):
    """upload.json as TFaaS's docs write it, beside the files it names."""
    d = tls["tmp"] / "upload"
    d.mkdir()
    (d / "model.onnx").write_bytes((trained["dir"] / "model.onnx").read_bytes())
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (d / "params.json").write_text(json.dumps({"name": "tiny", "model": "model.onnx", "labels": "labels.txt"}))
    (d / "upload.json").write_text(json.dumps({"model": "model.onnx", "labels": "labels.txt",
                                               "params": "params.json", "name": "tiny"}))
    (d / "input.json").write_text(json.dumps({"keys": ["a", "b", "c", "d"], "values": SAMPLE}))
    return d


def test_an_allowed_certificate_uploads_and_the_last_upload_is_the_default(tls, upload_dir, trained):
    url, ca, alice = tls["url"], tls["ca"], tls["alice"]
    r = tfaas.upload(url, upload_dir / "upload.json", alice, ca)
    assert r.status == 200, r.body
    listed = tfaas.models(url, alice, ca)
    assert listed.status == 200 and "tiny" in [m["name"] for m in listed.json()]
    got = tfaas.predict(url, upload_dir / "input.json", "", alice, ca)  # input.json names no model
    assert got.status == 200 and np.allclose(got.json(), trained["expected"], atol=1e-5)
    named = tfaas.predict(url, upload_dir / "input.json", "tiny", alice, ca)
    assert np.allclose(named.json(), trained["expected"], atol=1e-5)


def test_another_dn_may_read_but_not_upload_or_delete(tls, upload_dir):
    url, ca, bob = tls["url"], tls["ca"], tls["bob"]
    r = tfaas.upload(url, upload_dir / "upload.json", bob, ca)
    assert r.status == 403 and BOB in r.json()["error"] and "allow-list" in r.json()["error"]
    assert tfaas.delete(url, "tiny", bob, ca).status == 403
    assert tfaas.models(url, bob, ca).status == 200  # a verified certificate reads


def test_no_certificate_and_no_token_is_refused_a_token_still_works(tls, upload_dir, trained):
    url, ca = tls["url"], tls["ca"]
    assert tfaas.upload(url, upload_dir / "upload.json", None, ca).status == 401
    assert tfaas.models(url, None, ca).status == 401
    assert tfaas.delete(url, "tiny", None, ca).status == 401
    r = httpx.post(url + "/json", json={"values": SAMPLE, "model": "tiny"}, headers=AUTH, verify=tls["verify"],
                   timeout=60)
    assert r.status_code == 200 and np.allclose(r.json(), trained["expected"], atol=1e-5)


def test_a_certificate_from_another_ca_fails_the_handshake(tls, tmp_path):
    stranger = TestCA(tmp_path).client(ALICE, "stranger.pem")  # alice's DN, but not signed by the client CA
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        tfaas.models(tls["url"], stranger, tls["ca"])


def test_a_bundle_without_params_json_gets_params_from_the_model(tls, trained):
    """`tar cfz model.tar.gz model` of a SavedModel, uploaded with --bundle."""
    tarball = tls["tmp"] / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(trained["dir"] / "saved" / "model", arcname="model")
    r = tfaas.bundle(tls["url"], tarball, tls["alice"], tls["ca"])
    assert r.status == 200, r.body
    params = httpx.get(tls["url"] + "/params/model", headers=AUTH, verify=tls["verify"]).json()
    assert params["name"] == "model" and params["model"] == "saved_model.pb"
    assert params["input_name"] and params["output_name"]
    r = httpx.post(tls["url"] + "/json", json={"values": SAMPLE}, headers=AUTH, verify=tls["verify"], timeout=60)
    assert np.allclose(r.json(), trained["expected"], atol=1e-5)  # the bundle is now the default


def test_image_answers_the_top_five_on_raw_pixels(tls, tmp_path):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(5)
    m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax")])
    m.save(tmp_path / "digits.keras")
    labels = [f"digit{i}" for i in range(7)]
    (tmp_path / "labels.txt").write_text("\n".join(labels))
    (tmp_path / "params.json").write_text(json.dumps({"name": "digits", "img_channels": 1}))
    (tmp_path / "upload.json").write_text(json.dumps({"model": "digits.keras", "labels": "labels.txt",
                                                      "params": "params.json", "name": "digits"}))
    assert tfaas.upload(tls["url"], tmp_path / "upload.json", tls["alice"], tls["ca"]).status == 200
    pixels = (np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16)
    (tmp_path / "digit.png").write_bytes(tf.io.encode_png(pixels).numpy())
    expected = np.asarray(m(pixels[None].astype(np.float32)))[0]  # raw 0-255 values, as TFaaS feeds them
    r = tfaas.predict_image(tls["url"], tmp_path / "digit.png", "digits", tls["alice"], tls["ca"])
    assert r.status == 200, r.body
    body = r.json()
    order = np.argsort(-expected)[:5]
    assert body["filename"] == "digit.png" and [c["label"] for c in body["labels"]] == [labels[i] for i in order]
    assert np.allclose([c["probability"] for c in body["labels"]], expected[order], atol=1e-5)


def test_deleting_is_200_whether_or_not_the_model_exists(tls, upload_dir):
    url, ca, alice = tls["url"], tls["ca"], tls["alice"]
    assert tfaas.upload(url, upload_dir / "upload.json", alice, ca).status == 200
    r = tfaas.delete(url, "tiny", alice, ca)
    assert r.status == 200 and json.loads(r.body)["deleted"] is True
    assert "tiny" not in [m["name"] for m in tfaas.models(url, alice, ca).json()]
    r = tfaas.delete(url, "tiny", alice, ca)
    assert r.status == 200 and json.loads(r.body)["deleted"] is False


def test_status_measures_the_service_cpu(tls, trained):
    """Between two /status calls the service loads a SavedModel (far more than a clock tick of CPU)."""
    get = {"headers": AUTH, "verify": tls["verify"], "timeout": 60}
    httpx.get(tls["url"] + "/status", **get)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(trained["dir"] / "saved" / "model", arcname="busy")
    r = httpx.post(tls["url"] + "/upload", content=buf.getvalue(), headers={**AUTH, "Content-Encoding": "gzip"},
                   verify=tls["verify"], timeout=120)
    assert r.status_code == 200, r.text
    assert httpx.get(tls["url"] + "/status", **get).json()["cpu_percent"] > 0


def test_keys_and_secrets_stay_out_of_the_log(tls):
    key = (tls["tmp"] / "server.key").read_text()
    log = tls["log"].read_text()
    assert "PRIVATE KEY" not in log and key.splitlines()[1] not in log


@pytest.mark.parametrize(("args", "message"), [
    (["--writer-dn", "/CN=alice"], "need HTTPS"),
    (["--tls-cert", "c.pem"], "give both --tls-cert and --tls-key"),
    (["--tls-cert", "{cert}", "--tls-key", "{key}", "--writer-dn", "/CN=alice"], "need --client-ca"),
    (["--tls-cert", "{cert}", "--tls-key", "{open_key}"], "readable by others"),
])
def test_tls_options_are_checked_before_serving(tmp_path, args, message):
    ca = TestCA(tmp_path)
    cert, key = ca.server()
    open_key = tmp_path / "open.key"
    open_key.write_bytes(key.read_bytes())
    open_key.chmod(0o644)
    token = tmp_path / "token"
    token.write_text("x" * 32)
    token.chmod(0o600)
    args = [a.format(cert=cert, key=key, open_key=open_key) for a in args]
    r = subprocess.run([sys.executable, "-m", "dodas.inference", "--models", str(tmp_path / "m"), "--token-file",
                        str(token), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
