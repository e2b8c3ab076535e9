"""`python -m dodas.inference --models DIR --address A --port P --token-file F`:
the token comes from a file or $DODAS_INFERENCE_TOKEN, never the command line.
With --tls-cert and --tls-key it serves HTTPS; with --client-ca too, clients may
present certificates that CA signed (as TFaaS's clients do), and those whose
subject DN is in --writer-dn/--writer-dns-file may upload and delete. The key is a
file (mode 0600): only its path is on the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .auth import TokenError, load_token
from .tls import TLSError, check_files, normalise_dn, read_allow_list, uvicorn_options


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
    ap.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM, mode 0600)")
    ap.add_argument("--client-ca", type=Path, help="accept client certificates this CA (PEM bundle) signed")
    ap.add_argument("--writer-dn", action="append", default=[],
                    help="a client certificate subject DN that may upload and delete (repeatable); "
                         "/DC=org/CN=alice or CN=alice,DC=org")
    ap.add_argument("--writer-dns-file", type=Path, help="such DNs, one a line")
    args = ap.parse_args(argv)
    try:
        token = load_token(args.token_file)
        tls_options, writers = _tls(args)
    except (TokenError, TLSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import uvicorn

    from .app import Config, create_app

    cfg = Config(models=args.models, token=token, open_reads=args.open_reads, cache_limit=args.cache_limit,
                 max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                 max_unpacked_bytes=int(4 * args.max_upload_mb * 1024 * 1024), writer_dns=tuple(writers))
    uvicorn.run(create_app(cfg), host=args.address, port=args.port, log_level="info", access_log=False,
                **tls_options)
    return 0


def _tls(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """uvicorn's TLS keywords and the writers' DNs, or TLSError saying what is missing."""
    writers = [normalise_dn(dn) for dn in args.writer_dn]
    if args.writer_dns_file is not None:
        writers += read_allow_list(args.writer_dns_file)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise TLSError("give both --tls-cert and --tls-key (or neither)")
    if args.tls_cert is None:
        if args.client_ca is not None or writers:
            raise TLSError("--client-ca and writer DNs need HTTPS: give --tls-cert and --tls-key")
        return {}, []
    if writers and args.client_ca is None:
        raise TLSError("writer DNs need --client-ca (the CA that signs the clients' certificates)")
    check_files(args.tls_cert, args.tls_key, args.client_ca)
    return uvicorn_options(args.tls_cert, args.tls_key, args.client_ca), writers


if __name__ == "__main__":
    sys.exit(main())
