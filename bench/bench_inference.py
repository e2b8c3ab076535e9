"""Benchmark: dodas's TFaaS-compatible inference service (dodas.inference), in one run.

A small dense Keras model (12 inputs, two hidden layers of 32 and 16, softmax
over 3 classes) is trained here, saved as a TF2 SavedModel and as ONNX (built
with onnx.helper from the same weights). The real server is started as a child
process on loopback (`python -m dodas.inference`, the token in a 0600 file,
never on argv or in the environment); the SavedModel is uploaded as TFaaS's
bundle (a tar.gz with params.json and labels.txt) and the ONNX file by form.

(1) Latency of single-record POST /json over one keep-alive connection
    (http.client), p50/p99, beside the same model called in-process: the object
    the server would use (dodas.inference.loaders.load(...).predict) and the raw
    call (the SavedModel's serving signature, the Keras model, the onnxruntime
    session). HTTP overhead = server p50 - loader p50; the target is < 2 ms.
(2) Throughput: requests/s with 1, 2 and 4 concurrent keep-alive clients
    (threads, each its own connection) for --seconds each.
(3) Upload-to-servable: from the start of POST /upload until the first
    successful prediction of the uploaded model (a replacement of the same
    name), median of --uploads.

    .venv/bin/python bench/bench_inference.py [--n 1000] [--seconds 3] [--uploads 3]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TOKEN = "bench-inference-token-" + os.urandom(8).hex()
N_IN, LABELS = 12, ["a", "b", "c"]
SAMPLE = [round(float(v), 4) for v in np.random.default_rng(3).normal(size=N_IN)]
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def train(out: Path) -> dict:
    """Train the model; save it as a SavedModel directory and an ONNX file under `out`."""
    import keras
    import onnx

    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2048, N_IN)).astype(np.float32)
    y = np.digitize(x @ rng.normal(size=N_IN), [-1.0, 1.0])
    model = keras.Sequential([keras.Input((N_IN,), name="features"), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    model.export(str(out / "saved"), verbose=False)
    (w1, b1), (w2, b2), (w3, b3) = (layer.get_weights() for layer in model.layers)
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("MatMul", ["x", "w1"], ["a1"]), h.make_node("Add", ["a1", "b1"], ["z1"]),
         h.make_node("Relu", ["z1"], ["h1"]), h.make_node("MatMul", ["h1", "w2"], ["a2"]),
         h.make_node("Add", ["a2", "b2"], ["z2"]), h.make_node("Relu", ["z2"], ["h2"]),
         h.make_node("MatMul", ["h2", "w3"], ["a3"]), h.make_node("Add", ["a3", "b3"], ["z3"]),
         h.make_node("Softmax", ["z3"], ["probs"], axis=1)],
        "bench", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, N_IN])],
        [h.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [None, 3])],
        [onnx.numpy_helper.from_array(a, n) for a, n in
         ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"), (b3, "b3"))])
    onnx_model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(onnx_model)
    (out / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return {"keras": model, "expected": np.asarray(model(np.array([SAMPLE], dtype=np.float32)))[0]}


def bundle_bytes(saved: Path, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(saved, arcname=".")
        for fname, data in (("params.json", json.dumps({"name": name, "model": "saved_model.pb",
                                                         "labels": "labels.txt"}).encode()),
                            ("labels.txt", "\n".join(LABELS).encode())):
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def form_bytes(name: str, model_file: Path) -> tuple[bytes, str]:
    """A multipart form as TFaaS's curl recipe sends it: name, params, model, labels."""
    boundary = "bench" + os.urandom(8).hex()
    parts = [("name", None, name.encode()),
             ("params", "params.json", json.dumps({"name": name, "labels": "labels.txt"}).encode()),
             ("model", model_file.name, model_file.read_bytes()), ("labels", "labels.txt", "\n".join(LABELS).encode())]
    out = io.BytesIO()
    for field, filename, data in parts:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"".encode())
        if filename:
            out.write(f"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream".encode())
        out.write(b"\r\n\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=headers or HEADERS)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def predict(self, name: str) -> tuple[int, bytes]:
        return self.request("POST", "/json", json.dumps({"keys": [f"f{i}" for i in range(N_IN)], "values": SAMPLE,
                                                         "model": name}).encode())


def start_server(tmp: Path) -> tuple[subprocess.Popen, int]:
    token_file = tmp / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(TOKEN + "\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "DODAS_INFERENCE_TOKEN"}
    log = (tmp / "server.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "dodas.inference", "--models", str(tmp / "models"), "--address",
                             "127.0.0.1", "--port", str(port), "--token-file", str(token_file), "--cache-limit", "4"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{(tmp / 'server.log').read_text()[-3000:]}")
        try:
            if Client(port).request("GET", "/status")[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not answer in 60 s")


def upload(port: int, kind: str, src: Path, name: str) -> None:
    if kind == "bundle":
        body, ctype = bundle_bytes(src / "saved", name), "application/octet-stream"
    else:
        body, ctype = form_bytes(name, src / "model.onnx")
    status, text = Client(port).request("POST", "/upload", body, {**HEADERS, "Content-Type": ctype})
    if status != 200:
        raise SystemExit(f"upload of {name} refused: {status} {text[:300]!r}")


def percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def timed(call, n: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def http_latency(port: int, name: str, expected: np.ndarray, n: int) -> list[float]:
    c = Client(port)
    status, body = c.predict(name)
    got = np.asarray(json.loads(body))
    if status != 200 or not np.allclose(got, expected, atol=1e-5):
        raise SystemExit(f"{name}: wrong answer {status} {body[:200]!r} (expected {expected})")

    def call() -> None:
        if c.predict(name)[0] != 200:
            raise SystemExit(f"{name}: a prediction failed")
    return timed(call, n)


def throughput(port: int, name: str, clients: int, seconds: float) -> float:
    counts = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]
    errors: list[str] = []

    def worker(i: int) -> None:
        c = Client(port)
        c.predict(name)
        start.wait()
        while time.perf_counter() < stop_at[0]:
            status, body = c.predict(name)
            if status != 200:
                errors.append(body[:200].decode(errors="replace"))
                return
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 1e9
    start.wait()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"throughput: {errors[0]}")
    return sum(counts) / took


def upload_to_servable(port: int, kind: str, src: Path, name: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        c = Client(port)
        t0 = time.perf_counter()
        upload(port, kind, src, name)
        while c.predict(name)[0] != 200:
            pass
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="timed predictions per latency row")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    ap.add_argument("--uploads", type=int, default=3, help="uploads per upload-to-servable row")
    args = ap.parse_args()
    import onnxruntime as ort
    import tensorflow as tf

    from dodas.inference import loaders

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        src = tmp / "src"
        src.mkdir()
        t0 = time.perf_counter()
        trained = train(src)
        print(f"trained in {time.perf_counter() - t0:.1f} s", flush=True)
        proc, port = start_server(tmp)
        try:
            upload(port, "bundle", src, "bench_sm")
            upload(port, "onnx", src, "bench_onnx")
            x = np.array([SAMPLE], dtype=np.float32)
            # in-process: the object the server would build for each model, and the raw calls
            sm_dir = tmp / "models" / "bench_sm"
            sm = loaders.load("bench_sm", sm_dir, json.loads((sm_dir / "params.json").read_text()), LABELS)
            on_dir = tmp / "models" / "bench_onnx"
            on = loaders.load("bench_onnx", on_dir, json.loads((on_dir / "params.json").read_text()), LABELS)
            sig = tf.saved_model.load(str(src / "saved")).signatures["serving_default"]
            in_name = next(iter(sig.structured_input_signature[1]))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(str(src / "model.onnx"), sess_options=opts,
                                        providers=["CPUExecutionProvider"])
            keras_model = trained["keras"]
            for m in (sm, on):
                assert np.allclose(m.predict(x)[0], trained["expected"], atol=1e-5), m.name
            lat: dict[str, list[float]] = {}
            lat["sm_http"] = http_latency(port, "bench_sm", trained["expected"], args.n)
            lat["sm_loader"] = timed(lambda: sm.predict(x), args.n)
            lat["sm_sig"] = timed(lambda: sig(**{in_name: tf.constant(x)}), args.n)
            lat["keras"] = timed(lambda: keras_model(x, training=False), args.n)
            lat["on_http"] = http_latency(port, "bench_onnx", trained["expected"], args.n)
            lat["on_loader"] = timed(lambda: on.predict(x), args.n)
            lat["on_raw"] = timed(lambda: sess.run(["probs"], {"x": x}), args.n)
            p = {k: percentiles(v) for k, v in lat.items()}
            tput = {(name, c): throughput(port, name, c, args.seconds)
                    for name in ("bench_sm", "bench_onnx") for c in (1, 2, 4)}
            u2s = {kind: upload_to_servable(port, kind, src, f"bench_up_{kind}", args.uploads)
                   for kind in ("bundle", "onnx")}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log = (tmp / "server.log").read_text(errors="replace")
        if "Traceback" in log:
            print(log[-3000:], file=sys.stderr)

    print(f"\nlatency, one record per request ({args.n} timed after 50 warm-up)")
    print(f"| {'':<52} | {'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 54}|{'-' * 8}:|{'-' * 8}:|")
    rows = [("SavedModel: POST /json over HTTP (keep-alive)", "sm_http"),
            ("SavedModel: in-process, loaders' LoadedModel.predict", "sm_loader"),
            ("SavedModel: in-process, raw serving signature", "sm_sig"),
            ("Keras model in-process, model(x)", "keras"),
            ("ONNX: POST /json over HTTP (keep-alive)", "on_http"),
            ("ONNX: in-process, loaders' LoadedModel.predict", "on_loader"),
            ("ONNX: in-process, raw InferenceSession.run", "on_raw")]
    for label, key in rows:
        print(f"| {label:<52} | {p[key][0]:7.3f} | {p[key][1]:7.3f} |")
    verdict = []
    for label, http_key, loader_key in (("SavedModel", "sm_http", "sm_loader"), ("ONNX", "on_http", "on_loader")):
        over = p[http_key][0] - p[loader_key][0]
        verdict.append(over < 2.0)
        print(f"HTTP overhead at p50, {label}: {over:.3f} ms (target < 2 ms: {'met' if over < 2.0 else 'NOT met'})")
    print(f"\nthroughput, single-record POST /json, keep-alive clients (threads), {args.seconds:g} s each")
    print(f"| {'model':<12} | {'1 client':>9} | {'2 clients':>9} | {'4 clients':>9} |")
    print(f"|{'-' * 14}|{'-' * 10}:|{'-' * 10}:|{'-' * 10}:|")
    for name, label in (("bench_sm", "SavedModel"), ("bench_onnx", "ONNX")):
        print(f"| {label:<12} | " + " | ".join(f"{tput[(name, c)]:9.0f}" for c in (1, 2, 4)) + " | req/s")
    print(f"\nupload-to-servable (POST /upload start to first successful prediction), median of {args.uploads}")
    for kind, label in (("bundle", "SavedModel bundle (tar.gz)"), ("onnx", "ONNX (multipart form)")):
        print(f"  {label:<28} {np.median(u2s[kind]) * 1e3:8.1f} ms  (all: "
              + ", ".join(f"{v * 1e3:.0f}" for v in u2s[kind]) + ")")
    print(f"\nload: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores")
    print(" ".join(["command: .venv/bin/python bench/bench_inference.py", *sys.argv[1:]]))
    return 0 if all(verdict) else 1


if __name__ == "__main__":
    sys.exit(main())
