"""Model loaders: TF2 SavedModel, Keras `.keras` (safe mode, Keras's own classes only)
and ONNX (onnxruntime), each checked before it is loaded (tfcheck: an allow-list of
ops; kerascheck: the archive and its classes; onnxcheck: standard operators, no
external data). Nothing pickle-based: .h5/.pkl/.joblib/.pt are refused by name
before anything reads them. TensorFlow and onnxruntime are imported here, lazily:
`import tensorflow` takes about 7 s, and a server with only ONNX models never pays it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import kerascheck, onnxcheck, tfcheck
from .bundle import BundleError

REFUSED_SUFFIXES = {".h5": "HDF5 (legacy Keras)", ".hdf5": "HDF5 (legacy Keras)", ".pkl": "pickle",
                    ".pickle": "pickle", ".joblib": "joblib (pickle)", ".pt": "PyTorch (pickle)",
                    ".pth": "PyTorch (pickle)", ".npy": "NumPy (may hold pickles)", ".npz": "NumPy (may hold pickles)",
                    ".dill": "dill (pickle)", ".cloudpickle": "cloudpickle"}
class LoadError(ValueError):
    """The model cannot be served; the message says why (it goes back to the uploader)."""


@dataclass
class LoadedModel:
    """A model ready to answer: `run` maps a float32 batch to a float32 batch."""
    name: str
    kind: str  # "savedmodel", "keras" or "onnx"
    run: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int | None, ...]
    labels: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    #: the names of the input and output the service feeds and reads (from the model's signature)
    input_name: str = ""
    output_name: str = ""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.run(x.astype(np.float32)), dtype=np.float32)


def refused_reason(filename: str) -> str | None:
    """Why a file of this name is refused (a pickle-based format), or None."""
    lower = filename.lower()
    for suffix, what in REFUSED_SUFFIXES.items():
        if lower.endswith(suffix):
            return f"{filename}: {what} model files are refused (they can run arbitrary code when loaded); " \
                   f"upload a TF2 SavedModel, a .keras file or an ONNX file"
    return None


def detect(model_dir: Path, params: dict[str, Any]) -> tuple[str, Path]:
    """The model's kind and path inside its store directory."""
    for path in model_dir.rglob("*"):
        reason = refused_reason(path.name)
        if reason and not path.name.endswith(".weights.h5"):
            raise LoadError(reason)
    if (model_dir / "saved_model.pb").is_file():
        return "savedmodel", model_dir
    named = params.get("model")
    candidates = [model_dir / named] if named else []
    if named and model_dir.resolve() not in (model_dir / named).resolve().parents:
        raise LoadError(f"params.json's model {named!r} is not a file of the upload")
    candidates += sorted(model_dir.glob("*.keras")) + sorted(model_dir.glob("*.onnx"))
    for path in candidates:
        if path.is_file() and path.suffix == ".keras":
            return "keras", path
        if path.is_file() and path.suffix == ".onnx":
            return "onnx", path
    raise LoadError("no model found: expected a TF2 SavedModel (saved_model.pb and variables/), "
                    "a .keras file or an .onnx file")


def load(name: str, model_dir: Path, params: dict[str, Any], labels: list[str],
         max_bytes: int = 1024 * 1024 * 1024) -> LoadedModel:
    """Load the model in `model_dir` fully (and run it once on zeros when its input
    shape is known, so a model that cannot predict is refused at upload). `max_bytes`
    bounds what an archive inside it (a .keras zip) may unpack to."""
    kind, path = detect(model_dir, params)
    try:
        loader = {"savedmodel": _savedmodel, "keras": _keras, "onnx": _onnx}[kind]
        run, shape = loader(path, params, max_bytes)
    except LoadError:
        raise
    except (tfcheck.GraphRefused, kerascheck.KerasRefused, onnxcheck.OnnxRefused, BundleError) as exc:
        raise LoadError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a loader's own errors: the reason goes back, not a traceback
        raise LoadError(f"the {kind} model does not load: {type(exc).__name__}: {_short(exc)}") from None
    in_name, out_name = getattr(run, "io", ("", ""))
    model = LoadedModel(name, kind, run, shape, labels, params, str(in_name), str(out_name))
    if shape and all(d is not None for d in shape[1:]):
        try:
            out = model.predict(np.zeros((1, *shape[1:]), dtype=np.float32))
        except Exception as exc:  # noqa: BLE001 - a model's own errors: the reason goes back, not a traceback
            raise LoadError(f"the {kind} model loads but does not predict: {type(exc).__name__}: {_short(exc)}") \
                from None
        if labels and out.reshape(out.shape[0], -1).shape[1] != len(labels):
            raise LoadError(f"the model gives {out.reshape(out.shape[0], -1).shape[1]} outputs "
                            f"but labels.txt has {len(labels)} labels")
    return model


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("..." if len(text) > 400 else "")


def _savedmodel(path: Path, params: dict[str, Any], max_bytes: int):
    tfcheck.check_savedmodel(path, max_bytes)  # before TensorFlow sees the graph
    import tensorflow as tf  # lazily: seconds to import

    loaded = tf.saved_model.load(str(path))
    if "serving_default" not in loaded.signatures:
        raise LoadError("the SavedModel has no serving_default signature")
    sig = loaded.signatures["serving_default"]
    inputs = sig.structured_input_signature[1]
    if len(inputs) != 1:
        raise LoadError(f"the SavedModel's serving signature takes {len(inputs)} inputs; one is supported")
    in_name, spec = next(iter(inputs.items()))
    wanted = params.get("output_name") or ""

    def run(x: np.ndarray) -> np.ndarray:
        out = sig(**{in_name: tf.constant(x, dtype=spec.dtype)})
        return out[key].numpy()

    outputs = sorted(sig.structured_outputs)
    key = wanted if wanted in outputs else outputs[0]
    run.io = (in_name, key)  # type: ignore[attr-defined]

    run.keep = loaded  # type: ignore[attr-defined]  # the signature needs its object alive
    return run, tuple(spec.shape.as_list())


def _keras(path: Path, params: dict[str, Any], max_bytes: int):
    kerascheck.check_keras(path, max_bytes)
    import keras  # lazily: imports TensorFlow

    model = keras.saving.load_model(str(path), compile=False, safe_mode=True)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x, training=False))

    run.io = (model.inputs[0].name, model.outputs[0].name) if getattr(model, "inputs", None) \
        else ("", "")  # type: ignore[attr-defined]
    shape = model.inputs[0].shape if getattr(model, "inputs", None) else ()
    return run, tuple(shape)


def _onnx(path: Path, params: dict[str, Any], max_bytes: int):
    data = onnxcheck.check_onnx(path)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # requests run in parallel threads; one core each
    session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise LoadError(f"the ONNX model takes {len(inputs)} inputs; one is supported")
    in_name = inputs[0].name
    outputs = [o.name for o in session.get_outputs()]
    out_name = params.get("output_name") if params.get("output_name") in outputs else outputs[0]

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([out_name], {in_name: x})[0]  # InferenceSession.run is thread-safe

    run.io = (in_name, out_name)  # type: ignore[attr-defined]

    shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
    return run, shape
