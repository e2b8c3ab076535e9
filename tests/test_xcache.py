"""XCache for real: `dodas up templates/xcache.yaml` on this machine runs Debian's
xrootd as an origin and as a caching proxy in front of it (xrootd-server and
xrootd-client, installed by the test set-up). Files are read with xrdcp: through
the cache twice (the second read a hit, as the cache's own records say), past
the cache's high watermark (purged down to the low one), with the origin dead
(cached files still served, others refused), and after destroy nothing is left:
no process, no cache data, no probe file in the exported directory."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from support.livecluster import Dodas, kill_leftovers, processes_of, need_xrootd, wait_for
from support.paths import ROOT

TEMPLATE = str(ROOT / "templates" / "xcache.yaml")
NAME = "xc"
MiB = 2**20
FILES = ("a", "b", "c", "d", "e", "kept", "never")
#: XRootD's client gives up quickly here instead of retrying for minutes
FAST = {"XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "15", "XRD_STREAMTIMEOUT": "15"}


def xrdcp(url: str, dest: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["xrdcp", "--force", "--nopbar", url, str(dest)], capture_output=True, text=True,
                          env={**os.environ, **FAST, **(env or {})}, timeout=120)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("export")
    for name in FILES:
        (d / f"{name}.bin").write_bytes(os.urandom(8 * MiB))
    return d


@pytest.fixture(scope="module")
def xcache(tmp_path_factory, data):
    """A cache of 40 MiB purged from 30 MiB (0.75) down to 20 MiB (0.5)."""
    need_xrootd()
    d = Dodas(tmp_path_factory.mktemp("home"))
    d.run("up", TEMPLATE, "--name", NAME, "-i", f"data_dir={data}", "-i", "cache_size=40 MiB",
          "-i", "high_watermark=0.75", "-i", "low_watermark=0.5", "-i", "cache_port=31594", "-i", "origin_port=31595")
    yield d
    d.run("destroy", NAME, "--yes", check=False)
    kill_leftovers(d.home)


def instance(d: Dodas, node: str) -> dict:
    status = d.run("status", NAME, "--json", check=False)  # exit 5 once the origin is dead
    return next(i for i in json.loads(status.stdout)["instances"] if i["node"] == node)


def instance_dir(d: Dodas, node: str) -> Path:
    """An XRootD instance's directory: where its service's log lies (services/NAME.log)."""
    log = next(iter(instance(d, node)["services"].values()))["log"]
    return Path(log).parent.parent


def cache_dir(d: Dodas) -> Path:
    return instance_dir(d, "cache") / "cache"


def access_records(cinfo: Path) -> list[dict[str, int]]:
    """The access records xrdpfc_print shows for a cached file: hits and misses in kB."""
    out = subprocess.run(["xrdpfc_print", str(cinfo)], capture_output=True, text=True, check=True).stdout
    records = []
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)\s+\d{6}:\d{6}\s+\d{6}:\d{6}\s+\S+\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s*$", line)
        if m:
            records.append({"hit_kb": int(m.group(2)), "miss_kb": int(m.group(3)), "bypass_kb": int(m.group(4))})
    return records


def test_up_is_ready_only_through_the_cache(xcache, data):
    outs = xcache.outputs(NAME)
    assert re.fullmatch(r"root://127\.77\.\d+\.\d+:31594", outs["cache_url"]), outs
    assert outs["origin_export"] == str(data)
    # the verification read the probe file through the cache: it is in the cache now
    probes = list(cache_dir(xcache).glob(".dodas-probe-*.cinfo"))
    assert len(probes) == 1
    assert (data / probes[0].name.removesuffix(".cinfo")).exists(), "the origin wrote the probe into its export"


def test_second_read_is_served_from_the_cache(xcache, data, tmp_path):
    url = xcache.outputs(NAME)["cache_url"]
    for attempt in (1, 2):
        got = xrdcp(f"{url}//a.bin", tmp_path / f"a{attempt}")
        assert got.returncode == 0, got.stderr
        assert sha(tmp_path / f"a{attempt}") == sha(data / "a.bin"), "the origin's bytes"
    cached = cache_dir(xcache) / "a.bin"
    assert cached.stat().st_size == 8 * MiB and sha(cached) == sha(data / "a.bin"), "kept on the cache's disk"
    records = wait_for(lambda: (r := access_records(cached.with_name("a.bin.cinfo"))) and len(r) >= 2 and r,
                       timeout=60)
    assert records[1]["miss_kb"] == 0 and records[1]["hit_kb"] == 8 * 1024, records


def test_origin_refuses_clients_without_the_key(xcache, data, tmp_path):
    origin = f"root://{instance(xcache, 'origin_host')['address']}:31595"
    got = xrdcp(f"{origin}//a.bin", tmp_path / "stolen")
    assert got.returncode != 0 and not (tmp_path / "stolen").exists()
    assert "Auth failed" in got.stderr or "auth" in got.stderr.lower(), got.stderr


def test_filling_past_the_high_watermark_purges_down_to_the_low_one(xcache, data, tmp_path):
    url = xcache.outputs(NAME)["cache_url"]
    for name in ("b", "c", "d", "e"):  # with a.bin: 40 MiB of files for a cache purged from 30 MiB
        got = xrdcp(f"{url}//{name}.bin", tmp_path / name)
        assert got.returncode == 0, got.stderr
    cdir = cache_dir(xcache)

    def usage() -> int:
        return sum(f.stat().st_blocks * 512 for f in cdir.glob("*.bin"))
    assert usage() > 30 * MiB, "the reads filled the cache past its high watermark"
    # XRootD purges at most once a minute
    left = wait_for(lambda: usage() <= 20 * MiB and usage(), timeout=200, every=2)
    assert left > 0, "purged down to the low watermark, not emptied"
    assert not (cdir / "a.bin").exists(), "the least recently used file went first"


def test_origin_dead_cached_files_still_served(xcache, data, tmp_path):
    url = xcache.outputs(NAME)["cache_url"]
    got = xrdcp(f"{url}//kept.bin", tmp_path / "first")
    assert got.returncode == 0, got.stderr
    cinfo = cache_dir(xcache) / "kept.bin.cinfo"
    wait_for(lambda: cinfo.exists() and "state complete" in subprocess.run(
        ["xrdpfc_print", str(cinfo)], capture_output=True, text=True).stdout, timeout=30)
    origin = [pid for pid, cmd in processes_of(xcache.home).items() if "-n origin" in cmd]
    assert len(origin) == 1, processes_of(xcache.home)
    os.kill(origin[0], signal.SIGKILL)
    wait_for(lambda: origin[0] not in processes_of(xcache.home), timeout=30)
    got = xrdcp(f"{url}//kept.bin", tmp_path / "again")
    assert got.returncode == 0, got.stderr
    assert sha(tmp_path / "again") == sha(data / "kept.bin")
    missed = xrdcp(f"{url}//never.bin", tmp_path / "never")
    assert missed.returncode != 0
    assert missed.stderr.strip(), "xrdcp says why"
    assert not (tmp_path / "never").exists() or (tmp_path / "never").stat().st_size == 0
    # dodas sees it too
    status = xcache.run("status", NAME, check=False)
    assert status.returncode == 5, "degraded (README: exit codes)"
    assert "dead: xrootd of origin[0]" in status.stdout and re.search(r"xrootd\s+pid \d+\s+DEAD", status.stdout)


def test_destroy_leaves_nothing(xcache, data):
    from dodas.configure.xrootd import admin_dir

    cdir = cache_dir(xcache)
    admin = [Path(admin_dir(str(instance_dir(xcache, node)))) for node in ("cache", "origin")]
    assert all(a.is_dir() for a in admin)
    xcache.run("destroy", NAME, "--yes")
    assert processes_of(xcache.home) == {}
    assert not cdir.exists(), "no cache data left"
    assert not list(data.glob(".dodas-probe-*")), "the probe file is gone from the export"
    assert sorted(p.name for p in data.iterdir()) == sorted(f"{n}.bin" for n in FILES), "the user's files are untouched"
    assert not [p for p in admin if p.exists()], "the sockets' directories are gone"


INDIGO = """tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - indigo_custom_types: https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml
topology_template:
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host:
          properties: { num_cpus: 1, mem_size: 2 GiB }
    xcache:
      type: tosca.nodes.indigo.XCache
      properties:
        origin_host: 127.0.0.1
        origin_xrd_port: 31896
        xrdport: 31894
      requirements:
        - host: box
"""


def test_indigo_xcache_in_front_of_an_outside_origin(tmp_path):
    """INDIGO's XCache shape (origin_host, origin_xrd_port, xrdport) runs dodas's
    cache, in front of a public origin that is not part of the deployment."""
    need_xrootd()
    export = tmp_path / "export"
    export.mkdir()
    (export / "f.bin").write_bytes(os.urandom(3 * MiB))
    (tmp_path / "adm").mkdir()
    cfg = tmp_path / "origin.cfg"
    cfg.write_text(f"all.adminpath {tmp_path}/adm\nall.pidpath {tmp_path}/adm\nxrd.port 31896\n"
                   f"all.export / nolock r/o\noss.localroot {export}\n")
    wrap = ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--"] if os.geteuid() == 0 else []
    origin = subprocess.Popen([*wrap, "xrootd", "-c", str(cfg), "-n", "outside"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    template = tmp_path / "indigo-xcache.yaml"
    template.write_text(INDIGO)
    d = Dodas(tmp_path / "home")
    try:
        d.run("up", str(template), "--name", "ix", "--yes")
        got = xrdcp("root://127.0.0.1:31894//f.bin", tmp_path / "got")
        assert got.returncode == 0, got.stderr
        assert sha(tmp_path / "got") == sha(export / "f.bin")
        d.run("destroy", "ix", "--yes")
        assert processes_of(d.home) == {}
    finally:
        origin.terminate()
        origin.wait(timeout=30)
        d.run("destroy", "ix", "--yes", check=False)
        kill_leftovers(d.home)
