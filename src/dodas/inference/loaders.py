"""Model loaders: TF2 SavedModel, Keras `.keras` (safe mode, no Lambda layers) and
ONNX (onnxruntime). Nothing pickle-based: .h5/.pkl/.joblib/.pt are refused by name
before anything reads them. TensorFlow and onnxruntime are imported here, lazily:
`import tensorflow` takes about 7 s, and a server with only ONNX models never pays it."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

REFUSED_SUFFIXES = {".h5": "HDF5 (legacy Keras)", ".hdf5": "HDF5 (legacy Keras)", ".pkl": "pickle",
                    ".pickle": "pickle", ".joblib": "joblib (pickle)", ".pt": "PyTorch (pickle)",
                    ".pth": "PyTorch (pickle)", ".npy": "NumPy (may hold pickles)", ".npz": "NumPy (may hold pickles)",
                    ".dill": "dill (pickle)", ".cloudpickle": "cloudpickle"}
# graph ops that touch files or run Python: refused in what an uploaded SavedModel's
# serving signature can reach (its own save/restore functions use SaveV2/RestoreV2, but
# only TensorFlow's loader calls them, with the model's own variables/ path)
DANGEROUS_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "ReadFile", "WriteFile", "MatchingFiles",
                 "DeleteFile", "ImmutableConst", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec",
                 "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
                 "FixedLengthRecordDatasetV2", "DatasetToTFRecord", "LoadDataset", "CSVDataset", "CSVDatasetV2",
                 "SqlDataset", "LMDBDataset", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
                 "DecodeProtoV2", "EncodeProto", "LookupTableImportV2", "InitializeTableFromTextFile",
                 "InitializeTableFromTextFileV2"}
DANGEROUS_PREFIXES = ("Save", "Restore", "Write", "Py", "Eager", "Snapshot", "Experimental", "Tpu", "_Send",
                      "_Recv", "_HostSend", "_HostRecv")


def _dangerous(op: str) -> bool:
    return op in DANGEROUS_OPS or op.startswith(DANGEROUS_PREFIXES)


def _serving_ops(proto: Any) -> set[str]:
    """Every op the serving_default signature can reach: from its output tensors back
    through the top-level graph's inputs, into every function a node calls (by op
    name or by a function-valued attribute), transitively."""
    ops: set[str] = set()
    for mg in proto.meta_graphs:
        if "serving_default" not in mg.signature_def:
            continue
        library = {fn.signature.name: fn for fn in mg.graph_def.library.function}
        nodes = {node.name: node for node in mg.graph_def.node}
        todo = [t.name.split(":")[0] for t in mg.signature_def["serving_default"].outputs.values()]
        seen_nodes: set[str] = set()
        functions: list[str] = []

        def called(node: Any) -> None:
            if node.op in library:
                functions.append(node.op)
            for value in node.attr.values():
                if value.HasField("func"):
                    functions.append(value.func.name)
                if value.HasField("list"):
                    functions.extend(f.name for f in value.list.func)

        while todo:
            name = todo.pop().lstrip("^")
            if name in seen_nodes or name not in nodes:
                continue
            seen_nodes.add(name)
            node = nodes[name]
            ops.add(node.op)
            called(node)
            todo.extend(i.split(":")[0] for i in node.input)
        seen_fns: set[str] = set()
        while functions:
            fname = functions.pop()
            if fname in seen_fns or fname not in library:
                continue
            seen_fns.add(fname)
            for node in library[fname].node_def:
                ops.add(node.op)
                called(node)
    return ops


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
    candidates += sorted(model_dir.glob("*.keras")) + sorted(model_dir.glob("*.onnx"))
    for path in candidates:
        if path.is_file() and path.suffix == ".keras":
            return "keras", path
        if path.is_file() and path.suffix == ".onnx":
            return "onnx", path
    raise LoadError("no model found: expected a TF2 SavedModel (saved_model.pb and variables/), "
                    "a .keras file or an .onnx file")


def load(name: str, model_dir: Path, params: dict[str, Any], labels: list[str]) -> LoadedModel:
    """Load the model in `model_dir` fully (and run it once on zeros when its input
    shape is known, so a model that cannot predict is refused at upload)."""
    kind, path = detect(model_dir, params)
    try:
        loader = {"savedmodel": _savedmodel, "keras": _keras, "onnx": _onnx}[kind]
        run, shape = loader(path, params)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a loader's own errors: the reason goes back, not a traceback
        raise LoadError(f"the {kind} model does not load: {type(exc).__name__}: {_short(exc)}") from None
    model = LoadedModel(name, kind, run, shape, labels, params)
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


def _savedmodel(path: Path, params: dict[str, Any]):
    import tensorflow as tf  # lazily: seconds to import
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    bad = sorted(op for op in _serving_ops(proto) if _dangerous(op))
    if bad:
        raise LoadError(f"the SavedModel's serving signature uses operations that touch files or run Python: "
                        f"{', '.join(bad)}")
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
        key = wanted if wanted in out else sorted(out)[0]
        return out[key].numpy()

    run.keep = loaded  # type: ignore[attr-defined]  # the signature needs its object alive
    return run, tuple(spec.shape.as_list())


def _keras(path: Path, params: dict[str, Any]):
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"{path.name} is not a Keras 3 .keras archive: {exc}") from None
    if '"Lambda"' in json.dumps(config):
        raise LoadError(f"{path.name} has a Lambda layer (arbitrary Python code); it is refused")
    import keras  # lazily: imports TensorFlow

    model = keras.saving.load_model(str(path), compile=False, safe_mode=True)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x, training=False))

    shape = model.inputs[0].shape if getattr(model, "inputs", None) else ()
    return run, tuple(shape)


def _onnx(path: Path, params: dict[str, Any]):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # requests run in parallel threads; one core each
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise LoadError(f"the ONNX model takes {len(inputs)} inputs; one is supported")
    in_name = inputs[0].name
    outputs = [o.name for o in session.get_outputs()]
    out_name = params.get("output_name") if params.get("output_name") in outputs else outputs[0]

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([out_name], {in_name: x})[0]  # InferenceSession.run is thread-safe

    shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
    return run, shape
