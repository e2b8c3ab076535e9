"""Serving the pipeline's model: upload its bundle to the inference service
(TFaaS's POST /upload of a gzip tarball), then ask the service for the held-out
sample's prediction and compare it with the probabilities training computed.

The service's token is read from a file (mode 0600), never from the command
line or the environment. An upload under the name of a served model replaces
it: the service loads the new one fully before switching, so predictions never
fail in between. Knows nothing of dodas.

    python serve.py --url http://HOST:PORT --token-file FILE --model-dir DIR --out PREDICTION.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TOLERANCE = 1e-4


def call(url: str, token: str, path: str, body: bytes, ctype: str, timeout: float = 300) -> object:
    req = urllib.request.Request(url.rstrip("/") + path, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise SystemExit(f"{path}: the service answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"{path}: cannot reach the inference service at {url}: {exc.reason}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-file", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    token = args.token_file.read_text().strip()
    sample = json.loads((args.model_dir / "sample.json").read_text())
    t0 = time.monotonic()
    up = call(args.url, token, "/upload", (args.model_dir / "bundle.tar.gz").read_bytes(), "application/gzip")
    uploaded = time.monotonic() - t0
    request = {"keys": sample["keys"], "values": sample["values"], "model": sample["model"]}
    got = call(args.url, token, "/json?labels=true", json.dumps(request).encode(), "application/json")
    servable = time.monotonic() - t0
    probs = [p["probability"] for p in got]
    worst = max(abs(a - b) for a, b in zip(probs, sample["expected"]))
    result = {"model": up["model"], "format": up["format"], "dataset": sample["dataset"], "week": sample["week"],
              "prediction": {p["label"]: round(p["probability"], 6) for p in got},
              "max_difference": worst, "upload_seconds": round(uploaded, 3), "servable_seconds": round(servable, 3)}
    args.out.write_text(json.dumps(result))
    print(json.dumps(result))
    if len(probs) != len(sample["expected"]) or worst > TOLERANCE:
        print(f"the service's prediction {probs} is not the trained model's {sample['expected']} "
              f"(tolerance {TOLERANCE})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
