"""dodas's TFaaS-compatible inference server (dodas.inference), as a real uvicorn
process on loopback, with real models: a tiny Keras model trained here once per
module, saved as a TF2 SavedModel, a .keras file, and ONNX (built with onnx.helper
from the same weights, so all three give the same probabilities)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import threading
import time

import httpx
import numpy as np
import pytest
from support.inference import (AUTH, LABELS, SAMPLE, TOKEN, bundle, params_json, predict, start_server,
                               upload_form)
from support.serverproc import stop


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inference")
    proc, url = start_server(tmp, "--cache-limit", "4", "--max-upload-mb", "2")
    yield url
    stop(proc)
    log = (tmp / "server.log").read_text(errors="replace")
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]  # every error was foreseen


def test_upload_predict_list_params_delete(server, trained):
    src, expected = trained["dir"], trained["expected"]
    r = upload_form(server, "keras-form", src / "model.keras")
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "keras"
    r = upload_form(server, "onnx-b64", src / "model.onnx", b64=True)
    assert r.status_code == 200, r.text
    r = httpx.post(server + "/upload", content=bundle(src / "saved" / "model", "saved-bundle", top="saved-bundle"),
                   headers={**AUTH, "Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
                   timeout=120)
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "saved-bundle", "format": "savedmodel", "labels": LABELS}
    for name in ("keras-form", "onnx-b64", "saved-bundle"):
        for path in ("/json", "/predict/json"):
            r = predict(server, name, path)
            assert r.status_code == 200, r.text
            assert np.allclose(r.json(), expected, atol=1e-5), (name, r.json(), expected)
    r = predict(server, "onnx-b64", params={"labels": "true"})
    assert [c["label"] for c in r.json()] == LABELS
    assert np.allclose([c["probability"] for c in r.json()], expected, atol=1e-5)
    listed = httpx.get(server + "/models", headers=AUTH).json()
    assert {m["name"] for m in listed} >= {"keras-form", "onnx-b64", "saved-bundle"}
    assert httpx.get(server + "/params/onnx-b64", headers=AUTH).json()["labels"] == "labels.txt"
    # replaced: the new model answers at once
    r = upload_form(server, "keras-form", src / "model.onnx")
    assert r.status_code == 200 and r.json()["format"] == "onnx"
    assert np.allclose(predict(server, "keras-form").json(), expected, atol=1e-5)
    assert httpx.delete(server + "/delete/keras-form", headers=AUTH).status_code == 200
    r = httpx.request("DELETE", server + "/delete", data={"model": "onnx-b64"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["deleted"] is True, r.text
    r = predict(server, "onnx-b64")
    assert r.status_code == 404 and "no model named 'onnx-b64'" in r.json()["error"]
    assert httpx.get(server + "/params/nothing", headers=AUTH).status_code == 404
    status = httpx.get(server + "/status", headers=AUTH).json()
    assert status["requests"]["POST"] >= 8 and "cache" in status


def test_camel_case_params(server, trained):
    r = upload_form(server, "camel", trained["dir"] / "model.onnx",
                    params=json.dumps({"name": "camel", "inputNode": "x", "outputNode": "probs"}).encode())
    assert r.status_code == 200, r.text
    p = httpx.get(server + "/params/camel", headers=AUTH).json()
    assert p["input_node"] == "x" and p["output_node"] == "probs" and "inputNode" not in p


def tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


def refused(server: str, body: bytes) -> str:
    r = httpx.post(server + "/upload", content=body, headers={**AUTH, "Content-Type": "application/octet-stream"},
                   timeout=60)
    assert r.status_code in (400, 413), r.text
    return r.json()["error"]


def test_bad_uploads_refused(server, trained, tmp_path):
    dotdot = tarfile.TarInfo("../evil.txt")
    dotdot.size = 4
    assert "'..' in a path is refused" in refused(server, tar_with(dotdot, b"evil"))
    absolute = tarfile.TarInfo("/tmp/evil.txt")
    absolute.size = 4
    assert "absolute paths are refused" in refused(server, tar_with(absolute, b"evil"))
    link = tarfile.TarInfo("m/labels.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    assert "links are refused" in refused(server, tar_with(link))
    hard = tarfile.TarInfo("m/labels.txt")
    hard.type, hard.linkname = tarfile.LNKTYPE, "params.json"
    assert "links are refused" in refused(server, tar_with(hard))
    assert "larger than the limit" in refused(server, os.urandom(3 * 1024 * 1024))
    bomb = tarfile.TarInfo("m/zeros")
    bomb.size = 9 * 1024 * 1024  # compresses to a few KB, unpacks past 4 x 2 MB
    error = refused(server, tar_with(bomb, bytes(bomb.size)))
    assert "unpacks to more than" in error or "compression ratio is above" in error, error
    assert "not a tar" in refused(server, b"hello")
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"not an onnx model at all")
    r = upload_form(server, "corrupt", corrupt)
    assert r.status_code == 400 and "upload refused: the onnx model does not load" in r.json()["error"], r.text
    corrupt_keras = tmp_path / "model.keras"
    corrupt_keras.write_bytes(b"PK not really a zip")
    r = upload_form(server, "corrupt", corrupt_keras)
    assert r.status_code == 400 and "not a Keras 3 .keras archive" in r.json()["error"], r.text
    for fname in ("model.h5", "model.pkl"):
        (tmp_path / fname).write_bytes(b"\x80\x04K\x01.")
        r = upload_form(server, "pickled", tmp_path / fname)
        assert r.status_code == 400 and "are refused (they can run arbitrary code" in r.json()["error"], r.text
    assert httpx.get(server + "/params/corrupt", headers=AUTH).status_code == 404
    assert httpx.get(server + "/params/pickled", headers=AUTH).status_code == 404


def test_lambda_layer_refused(server, trained, tmp_path):
    import keras

    m = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(3)])
    m.save(tmp_path / "lambda.keras")
    r = upload_form(server, "lambda", tmp_path / "lambda.keras")
    assert r.status_code == 400 and "Lambda layer" in r.json()["error"], r.text


def test_tokens(server, trained):
    src = trained["dir"] / "model.onnx"
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
        r = upload_form(server, "nope", src, headers=headers)
        assert r.status_code == 401 and "bearer token" in r.json()["error"]
        assert httpx.delete(server + "/delete/nope", headers=headers).status_code == 401
        assert httpx.get(server + "/models", headers=headers).status_code == 401  # reads are not open here
    r = httpx.post(server + "/json", json={"values": [1.0], "model": "x"})
    assert r.status_code == 401


def test_cache_evicts_with_limit_one_and_open_reads(trained, tmp_path):
    proc, url = start_server(tmp_path, "--cache-limit", "1", "--open-reads", env_token=True)
    try:
        src, expected = trained["dir"], trained["expected"]
        assert upload_form(url, "first", src / "model.onnx").status_code == 200
        r = httpx.post(url + "/json", json={"values": SAMPLE, "model": "first"}, timeout=120)
        assert r.status_code == 200 and not httpx.get(url + "/status").json()["tensorflow_loaded"]  # ONNX only
        assert upload_form(url, "second", src / "model.keras").status_code == 200
        for _ in range(2):
            for name in ("first", "second"):
                r = httpx.post(url + "/json", json={"values": SAMPLE, "model": name}, timeout=120)  # no token
                assert r.status_code == 200, r.text
                assert np.allclose(r.json(), expected, atol=1e-5)
        cache = httpx.get(url + "/status").json()["cache"]
        assert cache["cache_limit"] == 1 and len(cache["cached"]) == 1
        assert cache["evictions"] >= 4, cache
        assert upload_form(url, "third", src / "model.onnx", headers={}).status_code == 401
    finally:
        stop(proc)


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + (_varint(len(payload)) + payload if wire == 2 else payload)


def test_protobuf_route_speaks_tfaas_messages(trained, tmp_path):
    """POST /proto with a Row written byte by byte here (TFaaS's tfaas.proto: key = 1,
    value = 2 packed floats, model = 3) answers Predictions (prediction = 1 of
    Class{label = 1, probability = 2}), read back byte by byte too."""
    proc, server = start_server(tmp_path)  # a server of its own: POST /params changes its default
    try:
        assert upload_form(server, "proto", trained["dir"] / "model.onnx").status_code == 200
        row = b"".join(_field(1, 2, k.encode()) for k in "abcd") \
            + _field(2, 2, struct.pack("<4f", *SAMPLE)) + _field(3, 2, b"proto")
        for path in ("/proto", "/predict/proto"):
            r = httpx.post(server + path, content=row, headers={**AUTH, "Content-Type": "application/octet-stream"},
                           timeout=60)
            assert r.status_code == 200, r.text
            got, data, i = [], r.content, 0
            while i < len(data):
                assert data[i] == (1 << 3 | 2)  # prediction, length-delimited
                size, cls = data[i + 1], data[i + 2:i + 2 + data[i + 1]]
                i += 2 + size
                label = cls[2:2 + cls[1]].decode()
                assert cls[0] == (1 << 3 | 2) and cls[2 + cls[1]] == (2 << 3 | 5)  # label; probability, fixed32
                got.append((label, struct.unpack("<f", cls[3 + cls[1]:7 + cls[1]])[0]))
            assert [g[0] for g in got] == LABELS
            assert np.allclose([g[1] for g in got], trained["expected"], atol=1e-5)
        # TFaaS's POST /params names the model a request without "model" gets
        unnamed = b"".join(_field(1, 2, k.encode()) for k in "abcd") + _field(2, 2, struct.pack("<4f", *SAMPLE))
        assert httpx.post(server + "/params", content=params_json("proto"), timeout=30).status_code == 401
        missing = httpx.post(server + "/params", content=params_json("nothing"), headers=AUTH, timeout=30)
        assert missing.status_code == 404
        r = httpx.post(server + "/params", content=params_json("proto"), headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["name"] == "proto", r.text
        assert httpx.post(server + "/proto", content=unnamed, headers=AUTH, timeout=60).status_code == 200
        r = httpx.post(server + "/json", json={"values": SAMPLE}, headers=AUTH, timeout=60)
        assert r.status_code == 200 and np.allclose(r.json(), trained["expected"], atol=1e-5)
        bad = httpx.post(server + "/proto", content=b"\xff\xff\xff", headers=AUTH, timeout=30)
        assert bad.status_code == 400 and "not a protobuf Row" in bad.json()["error"], bad.text
        assert httpx.post(server + "/proto", content=row, timeout=30).status_code == 401
    finally:
        stop(proc)


def test_first_requests_for_a_model_load_it_once(trained, tmp_path):
    """A restarted server finds its models on disk: eight first requests at once for
    one of them wait for a single load (not eight), and all get its answer."""
    proc, url = start_server(tmp_path, "--open-reads", env_token=True)
    try:
        assert upload_form(url, "cold", trained["dir"] / "model.keras").status_code == 200
    finally:
        stop(proc)
    proc, url = start_server(tmp_path, "--open-reads", env_token=True)  # the same models directory
    try:
        answers: list[httpx.Response] = []

        def ask() -> None:
            answers.append(httpx.post(url + "/json", json={"values": SAMPLE, "model": "cold"}, timeout=120))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert [r.status_code for r in answers] == [200] * 8
        assert all(np.allclose(r.json(), trained["expected"], atol=1e-5) for r in answers)
        cache = httpx.get(url + "/status").json()["cache"]
        assert cache["loads"] == 1 and cache["misses"] == 8, cache
        assert httpx.post(url + "/json", json={"values": SAMPLE, "model": "nothing"}, timeout=30).status_code == 404
    finally:
        stop(proc)


def test_token_on_command_line_impossible_and_file_mode_checked(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    r = subprocess.run([sys.executable, "-m", "dodas.inference", "--models", str(tmp_path / "m"),
                        "--token-file", str(token)], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "DODAS_INFERENCE_TOKEN"})
    assert r.returncode == 2 and "readable by others" in r.stderr and "Traceback" not in r.stderr


def test_concurrent_predictions_while_replaced(server, trained):
    """Eight threads predict while the model is replaced twice (ONNX <-> .keras): every
    answer is a whole model's (200, the same probabilities), none an error."""
    src, expected = trained["dir"], trained["expected"]
    assert upload_form(server, "swap", src / "model.onnx").status_code == 200
    results: list[tuple[int, list]] = []
    stop_at = time.monotonic() + 60

    def hammer() -> None:
        with httpx.Client(headers=AUTH, timeout=120) as c:
            for _ in range(25):
                if time.monotonic() > stop_at:
                    break
                r = c.post(server + "/json", json={"values": SAMPLE, "model": "swap"})
                results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for f in ("model.keras", "model.onnx"):
        assert upload_form(server, "swap", src / f).status_code == 200
    for t in threads:
        t.join()
    assert len(results) == 200
    assert all(code == 200 and np.allclose(body, expected, atol=1e-5) for code, body in results), \
        [r for r in results if r[0] != 200][:3]


def test_image_prediction(server, tmp_path):
    """POST /image (and /predict/image): a PNG in a multipart form, TFaaS's answer
    {"filename", "labels": [{"label", "probability"}]} (highest first), equal to the
    model in-process; pixels divided by 255 because the params' options say scale=255."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    m.save(tmp_path / "img.keras")
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16
    png = tf.io.encode_png(pixels).numpy()
    expected = np.asarray(m(pixels[None].astype(np.float32) / 255.0))[0]
    r = upload_form(server, "img", tmp_path / "img.keras",
                    params=json.dumps({"name": "img", "img_channels": 1, "options": ["scale=255"]}).encode())
    assert r.status_code == 200, r.text
    order = sorted(range(3), key=lambda i: -expected[i])
    for path in ("/image", "/predict/image"):
        r = httpx.post(server + path, data={"model": "img"}, files={"image": ("digit.png", png)}, headers=AUTH,
                       timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["filename"] == "digit.png" and [c["label"] for c in body["labels"]] == [LABELS[i] for i in order]
        assert np.allclose([c["probability"] for c in body["labels"]], expected[order], atol=1e-5)
    r = httpx.post(server + "/image", data={"model": "img"}, files={"image": ("x.png", b"not a png")}, headers=AUTH)
    assert r.status_code == 400 and "cannot predict on this image" in r.json()["error"]


def test_bad_requests_are_json_errors(server, trained):
    assert upload_form(server, "errs", trained["dir"] / "model.onnx").status_code == 200
    cases = [(b"{not json", "not JSON"), (b'{"values": [1, 2]}', "takes 4 values, got 2"),  # the last upload
             (b'{"model": "errs", "values": "abc"}', "must be a list of numbers"),
             (b'{"model": "errs", "values": [1, 2]}', "takes 4 values, got 2"),
             (b'{"model": "errs", "keys": ["a"], "values": [1, 2, 3, 4]}', "1 keys but 4 values")]
    for body, message in cases:
        r = httpx.post(server + "/json", content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
        assert "Traceback" not in r.text
    r = httpx.post(server + "/upload", data={"name": "../x", "op": "o"}, files={"params": b"{}", "model": b"x"},
                   headers=AUTH)
    assert r.status_code == 400 and "invalid model name" in r.json()["error"]
    r = httpx.post(server + "/upload", data={"name": "nop", "op": "o"}, files={"model": b"x"}, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"] == "the form does not provide params"
    r = httpx.post(server + "/upload", data={"name": "other", "op": "o"},
                   files={"params": json.dumps({"name": "errs"}).encode(), "model": ("m.onnx", b"x")}, headers=AUTH)
    assert r.status_code == 400 and "is not the form's name" in r.json()["error"]


def test_savedmodel_that_writes_files_refused(server, tmp_path):
    """A SavedModel is a graph, not Python, but graph ops can read and write files:
    one whose serving signature calls tf.io.write_file is refused, and writes nothing."""
    import tensorflow as tf

    victim = tmp_path / "written-by-model"

    class Evil(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(victim), tf.strings.as_string(tf.reduce_sum(x)))
            return {"probs": tf.nn.softmax(x[:, :3])}

    evil = Evil()
    tf.saved_model.save(evil, str(tmp_path / "evil"), signatures={"serving_default": evil.serve})
    assert not victim.exists()
    body = bundle(tmp_path / "evil", "evil", top="evil")
    error = refused(server, body)
    assert "operations not allowed in an uploaded model" in error and "'WriteFile' (node" in error, error
    assert not victim.exists()
    assert httpx.get(server + "/params/evil", headers=AUTH).status_code == 404
