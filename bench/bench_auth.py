"""Benchmark: validating an access token whose key is already known.

The server validates the bearer token of every request, so the common case (a
token from a trusted issuer, signed with a key already fetched) must cost
little: a header parse, one RSA-2048 signature check and a few comparisons, no
request. The issuer is the development issuer on loopback (real discovery, real
key set); the first validation fetches discovery and keys and is timed apart;
then `--n` validations of the same token, and of `--distinct` different tokens
in turn, report tokens/s and microseconds per token. The issuer's request count
is checked to have stayed put.

    .venv/bin/python bench/bench_auth.py --n 5000
"""

from __future__ import annotations

import argparse
import time

import httpx

from dodas.devissuer.config import parse
from dodas.devissuer.serve import start
from dodas.server.auth import IssuerConfig, TokenValidator


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--distinct", type=int, default=100)
    args = p.parse_args()
    cfg = parse({"audience": "dodas", "users": [{"username": "alice", "password": "pw", "groups": ["/dodas"]}],
                 "clients": [{"client_id": "bench"}]})
    running = start(cfg)
    try:
        def token() -> str:
            r = httpx.post(running.url + "/token", data={"grant_type": "password", "client_id": "bench",
                                                         "username": "alice", "password": "pw"})
            return r.json()["access_token"]
        toks = [token() for _ in range(args.distinct)]
        v = TokenValidator([IssuerConfig(url=running.url, audience="dodas")])
        t0 = time.perf_counter()
        v.validate(toks[0])
        first = time.perf_counter() - t0
        hits = sum(running.issuer.hits.values())
        t0 = time.perf_counter()
        for _ in range(args.n):
            v.validate(toks[0])
        same = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(args.n):
            v.validate(toks[i % len(toks)])
        mixed = time.perf_counter() - t0
        assert sum(running.issuer.hits.values()) == hits, "a validation with a known key made a request"
        print(f"first validation (discovery + key set over loopback HTTP): {first * 1e3:.1f} ms")
        for label, elapsed in (("same token", same), (f"{len(toks)} tokens in turn", mixed)):
            print(f"{label:>20}: {args.n / elapsed:,.0f} tokens/s, {elapsed / args.n * 1e6:.0f} us per token")
    finally:
        running.stop()


if __name__ == "__main__":
    main()
