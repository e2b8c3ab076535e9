"""The inference service's tests share one tiny model: a Keras classifier trained a
few epochs on synthetic data and saved as a SavedModel, a .keras file and an ONNX
graph of the same weights, so all three give the same probabilities (the `trained`
fixture, a plugin of tests/conftest.py); the TFaaS upload and prediction calls and
tarball bundle; the service as a process of the test (start_server) and its peak
memory (peak_memory, the process's own VmHWM). TensorFlow and ONNX (the ml extra,
part of what `make.py test` installs) are imported when the model is first made, not
when the suite starts."""

from __future__ import annotations

import base64
import io
import json
import os
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from support.serverproc import free_port, stop

TOKEN = "t0ken-for-the-inference-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LABELS = ["low", "mid", "high"]
SAMPLE = [0.3, -1.2, 0.8, 0.1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The Keras model (trained a few epochs on synthetic data) and its three saved forms."""
    import keras
    import numpy as np
    import onnx

    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = np.digitize(x @ np.array([1.0, -0.5, 0.7, 0.2]), [-0.5, 0.5])
    model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    out = tmp_path_factory.mktemp("models-src")
    saved = out / "saved"
    saved.mkdir()
    model.export(str(saved / "model"), verbose=False)  # TF2 SavedModel directory
    model.save(out / "model.keras")
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers)
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("MatMul", ["x", "w1"], ["a"]), h.make_node("Add", ["a", "b1"], ["b"]),
         h.make_node("Relu", ["b"], ["c"]), h.make_node("MatMul", ["c", "w2"], ["d"]),
         h.make_node("Add", ["d", "b2"], ["e"]), h.make_node("Softmax", ["e"], ["probs"], axis=1)],
        "tiny", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
        [h.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [None, 3])],
        [onnx.numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    onnx_model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(onnx_model)
    (out / "model.onnx").write_bytes(onnx_model.SerializeToString())
    expected = np.asarray(model(np.array([SAMPLE], dtype=np.float32)))[0]
    return {"dir": out, "expected": expected, "model": model}


def params_json(name: str, **extra) -> bytes:
    """TFaaS's params.json of a model named `name`."""
    return json.dumps({"name": name, "labels": "labels.txt", **extra}).encode()


def upload_form(url: str, name: str, model_file: Path, *, b64: bool = False, headers=AUTH, params=None):
    """TFaaS's /upload form: the model file (base64 if asked), its params and labels."""
    data = model_file.read_bytes()
    hdrs = dict(headers)
    if b64:
        data = base64.b64encode(data)
        hdrs["Content-Encoding"] = "base64"
    files = {"params": ("params.json", params if params is not None else params_json(name)),
             "model": (model_file.name, data), "labels": ("labels.txt", "\n".join(LABELS).encode())}
    return httpx.post(url + "/upload", data={"name": name, "op": "probs"}, files=files, headers=hdrs, timeout=120)


def predict(url: str, name: str, path: str = "/json", headers=AUTH, **kw) -> httpx.Response:
    """A prediction of SAMPLE by the model `name`."""
    return httpx.post(url + path, json={"keys": ["a", "b", "c", "d"], "values": SAMPLE, "model": name},
                      headers=headers, timeout=120, **kw)


def start_server(tmp: Path, *extra: str, env_token: bool = False,
                 https_ca: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m dodas.inference` on a free 127.0.0.1 port, waited for until /status answers
    (over HTTPS, the server's certificate checked against https_ca, when that is given)."""
    models = tmp / "models"
    env = dict(os.environ)
    args = [sys.executable, "-m", "dodas.inference", "--models", str(models), "--address", "127.0.0.1"]
    if env_token:
        env["DODAS_INFERENCE_TOKEN"] = TOKEN
    else:
        token_file = tmp / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        args += ["--token-file", str(token_file)]
    log = tmp / "server.log"
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([*args, "--port", str(port), *extra], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    url = f"{'https' if https_ca else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            verify = ssl.create_default_context(cafile=str(https_ca)) if https_ca else True
            httpx.get(url + "/status", timeout=5, verify=verify)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(proc)
    pytest.fail(f"the inference server did not start:\n{log.read_text(errors='replace')[-3000:]}")


def peak_memory(proc: subprocess.Popen) -> int:
    """The service process's peak resident memory so far (VmHWM), in bytes."""
    with open(f"/proc/{proc.pid}/status") as status:
        found = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    return int(found[0]) * 1024


def bundle(src: Path, name: str, top: str | None = None, **params) -> bytes:
    """TFaaS's bundle: a gzip tarball of a SavedModel directory with params.json and labels.txt."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        prefix = f"{top}/" if top else ""
        tar.add(src, arcname=top or ".")
        for fname, data in (("params.json", params_json(name, model="saved_model.pb", **params)),
                            ("labels.txt", "\n".join(LABELS).encode())):
            info = tarfile.TarInfo(prefix + fname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
