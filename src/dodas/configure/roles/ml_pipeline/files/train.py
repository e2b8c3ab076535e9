"""Training the pipeline's model: a small Keras network that predicts, from one
week of a data set's reads, whether it is popular the week after.

With --previous (the model the pipeline served last) the training continues
from its weights on the new data instead of starting over: the model of a
pipeline re-run with new data keeps what it learnt. The inputs' normalisation
is a layer of the model, so the served model takes the features as they come.

Writes into OUT: model.keras (for the next run), bundle.tar.gz (TFaaS's bundle:
the TF2 SavedModel with params.json and labels.txt), metrics.json and
sample.json (one held-out row with the probabilities this process computes, for
the check through the service). Knows nothing of dodas.

    python train.py --features FEATURES.json --out DIR --name MODEL --version N [--previous model.keras]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import time
from pathlib import Path


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Held out by data set (a fifth of them), so no data set is on both sides."""
    def held(r: dict) -> bool:
        return hashlib.sha256(r["dataset"].encode()).digest()[0] < 52

    return [r for r in rows if not held(r)], [r for r in rows if held(r)]


def build(keras, n_in: int, x_train):
    norm = keras.layers.Normalization(name="normalise")
    norm.adapt(x_train)
    model = keras.Sequential([keras.Input((n_in,), name="features"), norm,
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax", name="probabilities")], name="popularity")
    return model


def bundle(out: Path, saved: Path, params: dict, labels: list[str]) -> Path:
    path = out / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(saved, arcname=".")
        for name, data in (("params.json", json.dumps(params, indent=1).encode()),
                           ("labels.txt", "\n".join(labels).encode() + b"\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", type=int, required=True)
    ap.add_argument("--previous", type=Path)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    import keras
    import numpy as np

    data = json.loads(args.features.read_text())
    train, test = split(data["rows"])
    if len(train) < 50 or len(test) < 10:
        print(f"too few rows to train on ({len(train)} for training, {len(test)} held out)", file=sys.stderr)
        return 2
    x, y = (np.array([r["x"] for r in train], dtype=np.float32), np.array([r["y"] for r in train]))
    xt, yt = (np.array([r["x"] for r in test], dtype=np.float32), np.array([r["y"] for r in test]))
    keras.utils.set_random_seed(args.seed + args.version)
    continued = args.previous is not None and args.previous.is_file()
    model = keras.models.load_model(args.previous, safe_mode=True) if continued else build(keras, x.shape[1], x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3 if not continued else 3e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = float(model.evaluate(xt, yt, verbose=0)[1]) if continued else None
    model.fit(x, y, epochs=args.epochs if not continued else max(1, args.epochs // 2), batch_size=64, verbose=0)
    loss, accuracy = (float(v) for v in model.evaluate(xt, yt, verbose=0))
    trained = time.monotonic() - t0
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    saved = out / "saved_model"
    model.export(str(saved), verbose=False)
    params = {"name": args.name, "model": "saved_model.pb", "labels": "labels.txt",
              "input_node": "features", "output_node": "probabilities",
              "description": f"data-set popularity, version {args.version}"
                             + (", training continued from the previous version" if continued else ""),
              "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    bundle(out, saved, params, data["labels"])
    sample = xt[:1]
    probs = np.asarray(model(sample))[0]
    (out / "sample.json").write_text(json.dumps({
        "keys": data["features"], "values": [float(v) for v in sample[0]], "model": args.name,
        "expected": [float(p) for p in probs], "dataset": test[0]["dataset"], "week": test[0]["week"]}))
    metrics = {"version": args.version, "continued": continued, "accuracy": round(accuracy, 4),
               "accuracy_before": None if before is None else round(before, 4), "loss": round(loss, 4),
               "train_rows": len(train), "test_rows": len(test), "baseline": round(1 - float(yt.mean()), 4),
               "seconds": round(trained, 3)}
    (out / "metrics.json").write_text(json.dumps(metrics))
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
