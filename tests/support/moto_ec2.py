"""EC2 as the tests see it: a real moto server on loopback (the `moto` fixture, one
per module), boto3 clients of it, and `cloud`, a dodas whose only provider is that
EC2 (both fixtures are plugins of tests/conftest.py)."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from support.livecluster import Dodas, compute_template

SECRET_KEY = "dodas-test-secret-" + os.urandom(8).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A moto server process (with `extra_env`) and its URL, once it accepts connections."""
    port = _free_port()
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # as long as the server is alive and starting: a busy machine makes it slow, not broken
    # (a server that never listens is ended by the suite's hang guard)
    while proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the moto server exited ({proc.returncode}) before it listened")


@pytest.fixture(scope="module")
def moto():
    """The moto server's URL (one server per test module)."""
    proc, url = start_moto()
    yield url
    stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Ask the server to stop, and make sure it has: on a busy machine it may take a while."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ec2(url: str, region: str = "us-east-1", key: tuple[str, str] = ("AKIDDODASTEST", SECRET_KEY)):
    """A boto3 EC2 client of the moto server (boto3 imported here: every test session loads this plugin)."""
    import boto3

    return boto3.client("ec2", region_name=region, endpoint_url=url, aws_access_key_id=key[0],
                        aws_secret_access_key=key[1])


@pytest.fixture
def cloud(tmp_path, moto) -> Dodas:
    """dodas on a home of its own, its only provider the moto server, with credentials."""
    dodas = Dodas(tmp_path / "home")
    dodas.env.update(AWS_ACCESS_KEY_ID="AKIDDODASTEST", AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                     AWS_DEFAULT_REGION="us-east-1")
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        dodas.env.pop(k, None)
    write_providers(dodas.home, moto)
    return dodas


def write_providers(home: Path, url: str, extra: str = "") -> None:
    cfg = home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(textwrap.dedent(f"""\
        providers:
          - name: aws
            type: ec2
            rank: 1
            region: us-east-1
            endpoint_url: {url}
            poll_interval: 0.2
        """) + extra)


@functools.lru_cache(maxsize=None)
def an_ami(url: str, region: str = "us-east-1", key: tuple[str, str] = ("AKIDDODASTEST", SECRET_KEY)) -> str:
    client = ec2(url, region, key)  # one of moto's images (listing all 1300 takes seconds)
    found = client.describe_images(Filters=[{"Name": "name", "Values": ["*ubuntu*"]}])["Images"]
    return (found or client.describe_images()["Images"])[0]["ImageId"]


def template(tmp_path: Path, image: str, count: int = 2, cpus: int = 2, mem: str = "4 GB") -> str:
    return compute_template(tmp_path / "vms.yaml", count=count, cpus=cpus, mem=mem, node="vm", image=image,
                            public_port=8080, address_output="public_address")


def ours(url: str, dep_id: str, region: str = "us-east-1", *, ended: bool = False) -> list[dict]:
    res = ec2(url, region).describe_instances(Filters=[{"Name": "tag:dodas:deployment", "Values": [dep_id]}])
    return [i for r in res["Reservations"] for i in r["Instances"] if ended or i["State"]["Name"] != "terminated"]
