"""Benchmark: `dodas server` under read load, and creating through the API.

1. With `--deployments` stored deployments (made through the service functions
   on the simulated provider, shared with the reader's group), an open-loop load
   of `--rate` status reads per second (GET /api/v1/deployments/NAME, each with a
   bearer token the server validates) for `--seconds`. Latency is measured from
   the moment each request was due, so a server that falls behind is charged for
   the wait (no coordinated omission). Target: the rate held, p99 under 50 ms.
2. `--creates` deployments made through the API (POST, 202, a worker carries it
   out; timed until the last is CREATE_COMPLETE), against the same number made
   by calling the service functions directly (planning.prepare + deploy.apply)
   in one process. Target: the API within 1.2x.

The server is a real `dodas server` process with the development issuer as its
trusted issuer (real tokens, real validation); the load generator runs on the
same 2-core machine, which the figures include.

    .venv/bin/python bench/bench_server.py --deployments 1000 --rate 200 --seconds 30 --creates 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TEMPLATE = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    n: {type: integer, default: 2}
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable: {properties: {count: {get_input: n}}}
        host: {properties: {num_cpus: 1, mem_size: 512 MiB}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def populate(template: Path, count: int, prefix: str, group: str | None) -> float:
    """`count` deployments through the service functions, with the options a
    server's worker plans with (offline, no DODAS_INPUT_, only the caller's
    providers: here the simulated one); returns seconds taken."""
    from dodas.services import deploy, planning
    from dodas.state import queue

    t0 = time.perf_counter()
    for i in range(count):
        name = f"{prefix}{i:04d}"
        dplan = planning.prepare(str(template), name=name, offline=True, refresh=False, environment=False,
                                 allow_external_playbooks=False, allow_provider=lambda p: p.name == "sim")
        deploy.apply(dplan, parallelism=8)
        if group is not None:
            queue.set_access(name, "bench|owner", "owner", group)
    return time.perf_counter() - t0


async def read_load(url: str, token: str, names: list[str], rate: float, seconds: float,
                    connections: int = 32) -> dict[str, float]:
    """Open-loop GETs over `connections` keep-alive connections, written and read
    on raw asyncio streams: an HTTP client library costs more CPU per request
    than the server's work, and on 2 cores the generator's cost is the server's
    loss. Each request is due at its time; its latency counts from then."""
    host, port = url.removeprefix("http://").split(":")
    rng = random.Random(1)
    total = int(rate * seconds)
    due = asyncio.Queue()
    latencies: list[float] = []
    errors = [0]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while True:
                when = await due.get()
                if when is None:
                    return
                delay = when - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write((f"GET /api/v1/deployments/{rng.choice(names)} HTTP/1.1\r\nHost: {host}\r\n"
                              f"Authorization: Bearer {token}\r\n\r\n").encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - when)
                if status != 200:
                    errors[0] += 1
        finally:
            writer.close()

    start = time.perf_counter() + 0.2
    for i in range(total):  # due times in order; each connection takes the next one when it is free
        due.put_nowait(start + i / rate)
    for _ in range(connections):
        due.put_nowait(None)
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {"requests": total, "achieved_rps": total / elapsed, "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000,
            "p99_ms": q[98] * 1000, "max_ms": max(latencies) * 1000, "errors": errors[0]}


def creates_through_api(url: str, token: str, template: str, count: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        t0 = time.perf_counter()
        for i in range(count):
            r = c.post("/api/v1/deployments", json={"name": f"api{i:04d}", "template": template})
            assert r.status_code == 202, r.text
        posted = time.perf_counter() - t0
        while c.get("/health").json()["queued"]:  # one small query: the work not finished yet
            time.sleep(0.05)
        took = time.perf_counter() - t0
        print(f"  the {count} requests were answered (202) in {posted:.2f} s; all done {took - posted:.2f} s later")
        items = c.get("/api/v1/deployments", params={"limit": 1000}).json()["items"]
        done = [d for d in items if d["name"].startswith("api") and d["status"] == "CREATE_COMPLETE"]
        assert len(done) == count, [d for d in items if d["name"].startswith("api")]
        return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--deployments", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--creates", type=int, default=100)
    p.add_argument("--processes", type=int, default=1, help="the server's API processes (dodas server --processes)")
    p.add_argument("--runs", type=int, default=3, help="read-load runs, each reported (the machine is noisy)")
    p.add_argument("--profile", metavar="FILE", help="record the server with py-spy during the reads (collapsed "
                                                     "stacks, for finding where its time goes)")
    args = p.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dodas-bench-server-"))
    os.environ["DODAS_HOME"] = str(home)
    os.environ.pop("DODAS_DB_URL", None)
    (home / "config").mkdir(parents=True)
    (home / "config" / "providers.yaml").write_text("providers:\n  - {name: sim, type: simulated}\n")
    template = home / "boxes.yaml"
    template.write_text(TEMPLATE)

    from dodas.devissuer.config import parse
    from dodas.devissuer.serve import start

    issuer = start(parse({"audience": "dodas", "access_token_lifetime": 3600,
                          "users": [{"username": "alice", "password": "pw", "groups": ["/dodas", "/bench"]}],
                          "clients": [{"client_id": "bench"}]}))
    token = httpx.post(issuer.url + "/token", data={"grant_type": "password", "client_id": "bench",
                                                    "username": "alice", "password": "pw"}).json()["access_token"]
    print(f"storing {args.deployments} deployments through the service functions ...", flush=True)
    stored = populate(template, args.deployments, "d", "/bench")
    print(f"  {stored:.1f} s")
    from sqlalchemy import text

    from dodas.state import db
    with db.sessions()() as s:  # the stored state settled: its write-ahead log folded into the database
        s.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    port = _free_port()
    (home / "config" / "server.yaml").write_text(
        f"issuers: [{{url: '{issuer.url}', audience: dodas}}]\ndefault_providers: [sim]\nworkers: 1\n"
        "user_quota: {}\n")
    log = (home / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "dodas", "server", "--bind", f"127.0.0.1:{port}",
                               "--processes", str(args.processes)],
                              env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        names = [f"d{i:04d}" for i in range(args.deployments)]
        asyncio.run(read_load(url, token, names, 100, 5))  # warm up: pages cached, connections made
        spy = None
        if args.profile:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--format", "raw", "--output",
                                    args.profile, "--duration", str(int(args.seconds)), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(args.runs):
            res = asyncio.run(read_load(url, token, names, args.rate, args.seconds))
            print(f"status reads: {res['requests']} at {args.rate:.0f}/s for {args.seconds:.0f} s -> "
                  f"{res['achieved_rps']:.1f}/s achieved; p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms, "
                  f"p99 {res['p99_ms']:.1f} ms, max {res['max_ms']:.1f} ms; {res['errors']} errors", flush=True)
        if spy is not None:
            spy.wait()
        if args.creates:
            api = creates_through_api(url, token, TEMPLATE, args.creates)
            server.terminate()
            server.wait(timeout=60)
            direct = populate(template, args.creates, "direct", None)
            print(f"{args.creates} creates: through the API {api:.2f} s, service functions directly {direct:.2f} s "
                  f"-> {api / direct:.2f}x")
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)
        issuer.stop()


if __name__ == "__main__":
    main()
