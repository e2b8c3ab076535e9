"""The inference service against a hostile uploader (issue 25, attacks 2 and 3), on a
real `python -m dodas.inference` process: SavedModels whose graphs write, read or
list files, or run Python (made here with TensorFlow, one per op family), custom
ONNX operators and external data, Keras custom objects; tar and zip bombs of each
shape and broken archives. The attacker gets a 4xx naming what was refused, no file
is written (at upload, nor at a prediction after), and the service's own peak
memory (VmHWM) stays small whatever the archive claims."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from support import bombs
from support.inference import AUTH, bundle, peak_memory, start_server, upload_form
from support.serverproc import stop

UPLOAD_MB = 4
#: what a bomb may add to the service's peak memory: a small multiple of the upload limit
MEMORY_BOUND = 16 * UPLOAD_MB * 1024 * 1024


def _service(tmp: Path):
    proc, url = start_server(tmp, "--max-upload-mb", str(UPLOAD_MB))
    yield proc, url
    stop(proc)
    log = (tmp / "server.log").read_text(errors="replace")
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]  # every refusal was foreseen


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A service with a 4 MB upload limit: (its process, its URL)."""
    yield from _service(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def bomb_service(tmp_path_factory):
    """Another such service that never loads a model, so its peak memory (VmHWM) is its
    memory at start until an upload raises it: (its process, its URL, that peak)."""
    for proc, url in _service(tmp_path_factory.mktemp("bombs")):
        yield proc, url, peak_memory(proc)


def assert_small_memory(proc, url: str, start: int) -> None:
    """The service's peak memory is within MEMORY_BOUND of its peak at start, and no model
    framework was imported (which would raise the peak and hide a bomb's)."""
    assert httpx.get(url + "/status", headers=AUTH, timeout=30).json()["tensorflow_loaded"] is False
    grown = peak_memory(proc) - start
    print(f"peak memory grew by {grown >> 20} MiB")
    assert grown < MEMORY_BOUND, f"the service's peak memory grew by {grown >> 20} MiB"


def upload_raw(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/upload", content=body, headers={**AUTH, "Content-Type": "application/octet-stream"},
                      timeout=300)


def refused(r: httpx.Response, *words: str) -> str:
    """The error of a refused upload, checked: a 4xx (never a 500) naming `words`."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    error = r.json()["error"]
    assert all(w in error for w in words), (words, error)
    return error


# --- SavedModels with operations that do I/O or run Python ------------------------------------------

def _evil(kind: str, victim: Path):
    """A tf.Module whose serving function (or, for "hidden", another function) does `kind`."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, 4], tf.float32)]

    def probs(x):
        return {"probs": tf.nn.softmax(x[:, :3])}

    class Evil(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x):
            if kind == "print":
                tf.print(x, output_stream=f"file://{victim}")
            elif kind == "write":
                tf.io.write_file(str(victim), tf.strings.as_string(tf.reduce_sum(x)))
            elif kind == "read":
                x = x + tf.cast(tf.strings.length(tf.io.read_file("/etc/hostname")), tf.float32) * 0.0
            elif kind == "list":
                x = x + tf.cast(tf.size(tf.io.matching_files("/etc/*")), tf.float32) * 0.0
            elif kind == "pyfunc":
                x = tf.py_function(lambda t: t, [x], tf.float32)
            elif kind == "numpy":
                x = tf.numpy_function(lambda t: t, [x], tf.float32)
            elif kind == "save":
                tf.raw_ops.SaveV2(prefix=str(victim), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
            elif kind == "debug":
                x = tf.raw_ops.DebugIdentityV2(input=x, tfdbg_context_id="c", op_name="o", output_slot=0,
                                               tensor_debug_mode=1, debug_urls=[f"file://{victim}"])
            return probs(x)

        @tf.function(input_signature=spec)
        def hidden(self, x):  # not a signature: the loader still makes it callable
            if kind == "hidden":
                tf.io.write_file(str(victim), tf.strings.as_string(tf.reduce_sum(x)))
            return probs(x)

    return Evil()


FAMILIES = [("print", "PrintV2"), ("write", "WriteFile"), ("read", "ReadFile"), ("list", "MatchingFiles"),
            ("pyfunc", "EagerPyFunc"), ("numpy", "PyFunc"), ("save", "SaveV2"), ("debug", "DebugIdentityV2"),
            ("hidden", "WriteFile")]


@pytest.mark.parametrize(("kind", "op"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_savedmodel_with_io_ops_refused(service, tmp_path, kind, op):
    import tensorflow as tf

    _, url = service
    victim = tmp_path / "written-by-the-model"
    model = _evil(kind, victim)
    tf.saved_model.save(model, str(tmp_path / "evil"), signatures={"serving_default": model.serve})
    assert not victim.exists()
    name = f"evil-{kind}"
    error = refused(upload_raw(url, bundle(tmp_path / "evil", name, top=name)),
                    "operations not allowed in an uploaded model", f"'{op}' (node ")
    assert "in function '" in error  # where it is
    assert not victim.exists()
    r = httpx.post(url + "/json", json={"values": [0.1, 0.2, 0.3, 0.4], "model": name}, headers=AUTH, timeout=60)
    assert r.status_code == 404, r.text
    assert not victim.exists()


def test_stored_model_with_io_ops_refused_at_prediction(tmp_path):
    """A model already in the store (put there by an older version, which checked less) is
    checked when it is loaded for a prediction: a 409 naming the op, and nothing written."""
    import tensorflow as tf

    victim = tmp_path / "written-by-the-model"
    stored = tmp_path / "models" / "stored"
    model = _evil("print", victim)
    tf.saved_model.save(model, str(stored), signatures={"serving_default": model.serve})
    (stored / "params.json").write_text(json.dumps({"name": "stored"}))
    proc, url = start_server(tmp_path, "--max-upload-mb", str(UPLOAD_MB))
    try:
        r = httpx.post(url + "/json", json={"values": [0.1, 0.2, 0.3, 0.4], "model": "stored"}, headers=AUTH,
                       timeout=120)
        assert r.status_code == 409 and "'PrintV2' (node " in r.json()["error"], r.text
        assert not victim.exists()
    finally:
        stop(proc)


def test_ordinary_keras_models_still_served(service, tmp_path):
    """Conv2D, BatchNormalization, pooling, LSTM, Dropout, Dense, LayerNormalization: as an
    exported SavedModel and as a .keras file, both accepted and equal to Keras in-process."""
    import keras

    _, url = service
    keras.utils.set_random_seed(11)
    x = keras.Input((16,), name="features")
    image = keras.layers.Reshape((4, 4, 1))(x)
    image = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    image = keras.layers.BatchNormalization()(image)
    image = keras.layers.Flatten()(keras.layers.MaxPooling2D()(image))
    seq = keras.layers.LSTM(4)(keras.layers.Reshape((4, 4))(x))
    h = keras.layers.Dropout(0.3)(keras.layers.Concatenate()([image, seq]))
    h = keras.layers.LayerNormalization()(keras.layers.Dense(8, activation="gelu")(h))
    model = keras.Model(x, keras.layers.Dense(3, activation="softmax")(h))
    sample = np.linspace(-1, 1, 16).astype(np.float32)
    expected = np.asarray(model(sample[None]))[0]
    model.export(str(tmp_path / "saved"), verbose=False)
    model.save(tmp_path / "ordinary.keras")
    r = upload_raw(url, bundle(tmp_path / "saved", "ordinary-saved", top="ordinary-saved"))
    assert r.status_code == 200 and r.json()["format"] == "savedmodel", r.text
    r = upload_form(url, "ordinary-keras", tmp_path / "ordinary.keras")
    assert r.status_code == 200 and r.json()["format"] == "keras", r.text
    for name in ("ordinary-saved", "ordinary-keras"):
        r = httpx.post(url + "/json", json={"values": sample.tolist(), "model": name}, headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        assert np.allclose(r.json(), expected, atol=1e-5), (name, r.json(), expected)


# --- ONNX and .keras ------------------------------------------------------------------------------

def _onnx(tmp_path: Path, node_domain: str = "", external: bool = False) -> Path:
    import onnx

    h = onnx.helper
    weights = onnx.numpy_helper.from_array(np.eye(4, 3, dtype=np.float32), "w")
    if external:
        weights.data_location = onnx.TensorProto.EXTERNAL
        weights.ClearField("raw_data")
        for key, value in (("location", "../../../../etc/hostname"), ("offset", "0"), ("length", "48")):
            weights.external_data.add(key=key, value=value)
    op = "MatMul" if not node_domain else "Evil"
    graph = h.make_graph([h.make_node(op, ["x", "w"], ["probs"], domain=node_domain)], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
                         [h.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [None, 3])], [weights])
    opsets = [h.make_opsetid("", 17)] + ([h.make_opsetid(node_domain, 1)] if node_domain else [])
    path = tmp_path / f"m-{node_domain or 'std'}-{external}.onnx"
    path.write_bytes(h.make_model(graph, opset_imports=opsets).SerializeToString())
    return path


def test_onnx_custom_domain_and_external_data_refused(service, tmp_path):
    _, url = service
    assert upload_form(url, "onnx-plain", _onnx(tmp_path)).status_code == 200  # the same graph, standard
    refused(upload_form(url, "onnx-custom", _onnx(tmp_path, "com.evil")), "com.evil::Evil", "custom domain")
    refused(upload_form(url, "onnx-contrib", _onnx(tmp_path, "com.microsoft")), "com.microsoft::Evil")
    refused(upload_form(url, "onnx-external", _onnx(tmp_path, external=True)), "tensor 'w'", "external data")
    for name in ("onnx-custom", "onnx-contrib", "onnx-external"):
        assert httpx.get(url + f"/params/{name}", headers=AUTH).status_code == 404
    # a bundle's params.json naming a model file of the server's (outside the upload)
    outside = _onnx(tmp_path)
    for named in (str(outside), f"../../../../../../..{outside}"):
        body = _tar((_info("m/params.json"), json.dumps({"name": "escape", "model": named}).encode()))
        refused(upload_raw(url, body), "is not a file of the upload")


def _rewritten(src: Path, dest: Path, change=None, weights: bytes | None = None) -> Path:
    """`src` (a .keras file) with config.json passed through `change`, or other weights."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json" and change:
                data = json.dumps(change(json.loads(data))).encode()
            if info.filename == "model.weights.h5" and weights:
                data = weights
            zout.writestr(info, data)
    return dest


def _weights_reaching(src: Path, tmp: Path, kind: str) -> bytes:
    """`src`'s weights file with a link to, or a dataset stored in, a file of the server's."""
    import h5py

    h5 = tmp / f"{kind}.h5"
    with zipfile.ZipFile(src) as zf:
        h5.write_bytes(zf.read("model.weights.h5"))
    with h5py.File(h5, "a") as f:
        if kind == "link":
            f["stolen"] = h5py.ExternalLink("/etc/hostname", "/x")
        else:
            f.create_dataset("stolen", shape=(4,), dtype="u1", external=[("/etc/hostname", 0, 4)])
    return h5.read_bytes()


def test_keras_custom_objects_and_file_readers_refused(service, trained, tmp_path):
    _, url = service
    src = trained["dir"] / "model.keras"

    def custom(config):
        layer = config["config"]["layers"][1]
        layer["module"], layer["registered_name"] = "evilpkg.layers", "Custom>Dense"
        return config

    def tfsm(config):
        config["config"]["layers"][1].update(class_name="TFSMLayer", registered_name=None)
        return config

    def vocabulary(config):
        config["config"]["layers"][1]["config"]["vocabulary"] = "/etc/hostname"
        return config

    for name, change, words in (("custom", custom, ("evilpkg.layers", "no custom objects")),
                                ("tfsm", tfsm, ("TFSMLayer",)), ("vocab", vocabulary, ("names a file",))):
        path = _rewritten(src, tmp_path / f"{name}.keras", change)
        refused(upload_form(url, f"keras-{name}", path), *words)
    for kind, words in (("link", "is a link to another file"), ("external", "is stored in other files")):
        path = _rewritten(src, tmp_path / f"h5-{kind}.keras", weights=_weights_reaching(src, tmp_path, kind))
        refused(upload_form(url, f"keras-h5-{kind}", path), words)


# --- archives -------------------------------------------------------------------------------------

GNU_LONG = bombs.header("././@LongLink", tarfile.GNUTYPE_LONGNAME, bombs.BOMB_BYTES)
PAX = bombs.header("././@PaxHeader", tarfile.XHDTYPE, bombs.BOMB_BYTES)
HUGE_MEMBER = bombs.header("m/zeros", tarfile.REGTYPE, bombs.BOMB_BYTES)
TARBALL_BOMBS = [
    ("gnu-long-name-gz", lambda: bombs.gzip_bomb(GNU_LONG), "unpacks to more than"),
    ("gnu-long-name-raw", lambda: GNU_LONG + bytes(8192), "GNU long name record of 1610612736 bytes"),
    ("pax-header-gz", lambda: bombs.gzip_bomb(PAX), "unpacks to more than"),
    ("pax-header-raw", lambda: PAX + bytes(8192), "pax header of 1610612736 bytes"),
    ("huge-member-raw", lambda: HUGE_MEMBER + bytes(8192), "'m/zeros' is larger than"),
    ("zeros-gz", lambda: bombs.gzip_bomb(HUGE_MEMBER), "unpacks to more than"),
    ("ratio", lambda: _small_ratio_bomb(), "compression ratio is above 100:1"),
    ("many-members", lambda: bombs.many_members(10_001), "more than 10000 members"),
]


def _small_ratio_bomb() -> bytes:
    """10 MB of zeros in a tar.gz of about 10 KB: inside the unpacked limit, but a thousand to one."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("m/zeros")
        info.size = 10 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    return buf.getvalue()


@pytest.mark.parametrize(("make", "words"), [b[1:] for b in TARBALL_BOMBS], ids=[b[0] for b in TARBALL_BOMBS])
def test_tarball_bombs_refused_in_small_memory(bomb_service, make, words):
    proc, url, start = bomb_service
    body = make()
    assert len(body) < UPLOAD_MB * 1024 * 1024
    refused(upload_raw(url, body), words)
    assert_small_memory(proc, url, start)


def test_zip_bombs_refused_in_small_memory(bomb_service, trained, tmp_path):
    """A .keras whose config.json inflates to 1.5 GiB (declared), and one whose entries
    claim 100 bytes but inflate to 64 MiB (a lie found by the capped read and the CRC)."""
    proc, url, start = bomb_service
    real = (trained["dir"] / "model.keras").read_bytes()
    cases = (("declared", bombs.keras_bomb(), "unpacks to more than"),
             ("lying", bombs.lying_zip(real), "Bad CRC-32"),
             ("bad-crc", bombs.bad_crc_zip(real), "Bad CRC-32"))
    for name, data, words in cases:
        path = tmp_path / f"{name}.keras"
        path.write_bytes(data)
        assert path.stat().st_size < UPLOAD_MB * 1024 * 1024
        refused(upload_form(url, f"zip-{name}", path), words)
    assert_small_memory(proc, url, start)


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_malformed_archives_are_4xx(bomb_service):
    """Every broken or hostile archive is a 400 naming the problem (the module's fixture then
    checks the service logged no unexpected error)."""
    proc, url, start = bomb_service
    good = _tar((_info("m/params.json"), b'{"name": "m"}'), (_info("m/labels.txt"), b"a\n"))
    cases = [
        (good[: len(good) // 2], "corrupt or truncated"),
        (b"\x1f\x8b" + bytes(64), "corrupt or truncated"),
        (good[:-8] + bytes(8), "corrupt or truncated"),  # the gzip trailer (CRC, size) wrong
        (bytes(range(256)) * 4, "not a tar"),
        (_tar((_info("m/dev", tarfile.CHRTYPE), b"")), "only files and directories"),
        (_tar((_info("m/fifo", tarfile.FIFOTYPE), b"")), "only files and directories"),
        (_tar((_info("m/link", tarfile.SYMTYPE, "/etc/hostname"), b"")), "links are refused"),
        (_tar((_info("m/hard", tarfile.LNKTYPE, "/etc/hostname"), b"")), "links are refused"),
        (_tar((_info("/tmp/abs"), b"x")), "absolute paths are refused"),
        (_tar((_info("m/../../x"), b"x")), "'..' in a path is refused"),
        (_tar((_info("m/a"), b"x"), (_info("m/a/b"), b"y")), "cannot be unpacked"),
        (_tar((_info("m/" + "d" * 200), b"x")), "no params.json"),  # a GNU long name within bounds is fine
        (_tar((_info("m/params.json", tarfile.DIRTYPE), b"")), "no params.json"),
    ]
    for body, words in cases:
        refused(upload_raw(url, body), words)
    assert_small_memory(proc, url, start)


def test_allow_list_names_real_ops_and_no_io():
    """Every name of the allow-list is an op TensorFlow registers (a misspelt name would allow
    nothing and hide a gap), and none of the ops this file shows doing I/O is on it."""
    from tensorflow.python.framework import op_def_registry

    from dodas.inference import tfops

    assert [op for op in sorted(tfops.ALLOWED | tfops.CHECKPOINT) if op_def_registry.get(op) is None] == []
    io_ops = {op for _, op in FAMILIES} | {"Print", "ReadFile", "ImmutableConst", "InitializeTableFromTextFileV2",
                                           "TextLineDatasetV2", "CreateSummaryFileWriter", "DebugIdentity"}
    assert io_ops & tfops.ALLOWED == set()
    assert tfops.CHECKPOINT & tfops.ALLOWED == set()


def test_image_bomb_refused_before_decoding(bomb_service, tmp_path):
    """A PNG of 20000 x 20000 pixels (400 MB as grey bytes, 1.6 GB as floats) sent to /image
    is refused from its header: a 400, and the service neither decodes it nor imports TensorFlow."""
    proc, url, _ = bomb_service
    assert upload_form(url, "image-target", _onnx(tmp_path)).status_code == 200
    start = peak_memory(proc)  # with onnxruntime loaded
    png = bombs.png_bomb(20_000, 20_000)
    assert len(png) < UPLOAD_MB * 1024 * 1024
    r = httpx.post(url + "/image", data={"model": "image-target"}, files={"image": ("bomb.png", png)}, headers=AUTH,
                   timeout=120)
    refused(r, "cannot predict on this image", "decodes to 400000000 pixels")
    r = httpx.post(url + "/image", data={"model": "image-target"}, files={"image": ("x.txt", b"plain text")},
                   headers=AUTH, timeout=120)
    refused(r, "not a PNG, JPEG, GIF or BMP image")
    assert_small_memory(proc, url, start)
