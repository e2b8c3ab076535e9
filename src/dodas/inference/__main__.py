"""`python -m dodas.inference --models DIR --address A --port P --token-file F`:
the token comes from a file or $DODAS_INFERENCE_TOKEN, never the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .auth import TokenError, load_token


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dodas.inference", description=__doc__)
    ap.add_argument("--models", type=Path, required=True, help="the model store directory")
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8083, help="TFaaS's default: 8083")
    ap.add_argument("--token-file", type=Path, help="the upload token (mode 0600); else $DODAS_INFERENCE_TOKEN")
    ap.add_argument("--open-reads", action="store_true", help="models, params, status and predictions without token")
    ap.add_argument("--cache-limit", type=int, default=10, help="models kept loaded in memory (TFaaS's cacheLimit)")
    ap.add_argument("--max-upload-mb", type=float, default=256.0,
                    help="the largest upload (a tarball unpacks to 4x at most)")
    args = ap.parse_args(argv)
    try:
        token = load_token(args.token_file)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import uvicorn

    from .app import Config, create_app

    cfg = Config(models=args.models, token=token, open_reads=args.open_reads, cache_limit=args.cache_limit,
                 max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                 max_unpacked_bytes=int(4 * args.max_upload_mb * 1024 * 1024))
    uvicorn.run(create_app(cfg), host=args.address, port=args.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
