"""Bad XCache input: located at plan time where it can be known (watermarks,
sizes, a cache with no origin or two, an origin URL that is none, a cache bigger
than its host's disk), named by the local provider's preflight (packages not
installed, a cache bigger than the free disk), and otherwise a failed deployment
naming the service (an origin that does not answer), with nothing left behind."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from support.livecluster import Dodas, kill_leftovers, need_xrootd, processes_of
from support.located import one_error as located
from support.paths import ROOT

TEMPLATE = ROOT / "templates" / "xcache.yaml"


def one_error(r, path: Path) -> tuple[str, str]:
    """(the located line's text, the message) of a run that failed with one error."""
    line, _col, msg = located(r, path)
    return path.read_text().splitlines()[line - 1], msg


def variant(tmp_path: Path, old: str, new: str) -> Path:
    text = TEMPLATE.read_text()
    assert old in text, old
    out = tmp_path / "xcache.yaml"
    out.write_text(text.replace(old, new, 1))
    return out


CACHE_PROPS = "        port: { get_input: cache_port }\n"


@pytest.mark.parametrize("props, line, says", [
    ("        low_watermark: 0.97\n", "low_watermark: 0.97", "low_watermark 0.97 is not below high_watermark"),
    ("        origin_url: root://data.example.org:1094\n", "origin_url: root://data.example.org",
     "both an origin requirement and origin_url"),
    ("        ram: 512 MiB\n", "ram: 512 MiB", "ram"),
    ("        block_size: 64 MiB\n", "block_size: 64 MiB", "block_size"),
])
def test_cache_properties_located(cli, tmp_path, props, line, says):
    t = variant(tmp_path, CACHE_PROPS, CACHE_PROPS + props)
    key = props.split(":")[0].strip()
    t.write_text(t.read_text().replace(f"        {key}: {{ get_input: {key} }}\n", "", 1))
    text, msg = one_error(cli("plan", str(t)), t)
    assert line in text and says in msg, (text, msg)


def test_inverted_watermarks_as_inputs(cli):
    r = cli("plan", str(TEMPLATE), "-i", "low_watermark=0.96")
    text, msg = one_error(r, TEMPLATE)
    assert "low_watermark" in text and "is not below high_watermark 0.95" in msg, (text, msg)


def test_cache_without_origin(cli, tmp_path):
    t = variant(tmp_path, "        - origin: origin\n", "")
    text, msg = one_error(cli("plan", str(t)), t)
    assert text.strip() == "cache:" and 'node "cache" is an XCache with no origin' in msg, (text, msg)


@pytest.mark.parametrize("url", ["http://data.example.org/x", "root://", "root://host:99999", "file:///etc"])
def test_origin_url_that_is_none(cli, tmp_path, url):
    t = variant(tmp_path, "        - origin: origin\n", "")
    t.write_text(t.read_text().replace(CACHE_PROPS, CACHE_PROPS + f"        origin_url: \"{url}\"\n", 1))
    text, msg = one_error(cli("plan", str(t)), t)
    assert "origin_url" in text and "is not root://HOST[:PORT]" in msg, (text, msg)


def test_cache_bigger_than_its_hosts_disk(cli, tmp_path):
    t = variant(tmp_path, "          properties: { num_cpus: 1, mem_size: 2 GiB }",
                "          properties: { num_cpus: 1, mem_size: 2 GiB, disk_size: 20 GiB }")
    r = cli("plan", str(t), "-i", "cache_size=50 GiB", "--provider", "simulated")
    text, msg = one_error(r, t)
    assert "cache_size" in text and 'larger than the disk of its host "cache_host"' in msg, (text, msg)


def test_local_cache_bigger_than_the_free_disk(cli):
    free = max(shutil.disk_usage(p).free for p in ("/", "/tmp", os.environ["DODAS_HOME"].rsplit("/", 1)[0]))
    r = cli("plan", str(TEMPLATE), "-i", f"cache_size={free // 2**30 + 100} GiB")
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert re.search(r'node "cache" asks for \d+ GiB \(cache_size\) but \S+ has [\d.]+ GiB free', r.err)


def test_preflight_names_the_packages(tmp_path):
    """On a machine without XRootD (PATH without it), plan says what to install."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("unshare",):
        (bare / tool).symlink_to(shutil.which(tool))
    d = Dodas(tmp_path / "home")
    d.env["PATH"] = f"{Path(sys.executable).parent}:{bare}"
    r = d.run("plan", str(TEMPLATE), check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "run xrdcp, xrootd on this machine, which are not installed: apt-get install xrootd-client " \
           "xrootd-server" in r.stderr, r.stderr


def test_unreachable_origin_fails_naming_it(tmp_path):
    """An origin outside the deployment that does not answer: the cache's start
    fails saying so, and the failed attempt leaves nothing behind."""
    need_xrootd()
    t = tmp_path / "external.yaml"
    t.write_text("""tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host:
          properties: { num_cpus: 1, mem_size: 1 GiB }
    cache:
      type: tosca.nodes.dodas.XRootD.Cache
      properties:
        origin_url: root://127.0.0.1:9
        port: 31694
        cache_size: 100 MiB
      requirements:
        - host: box
""")
    d = Dodas(tmp_path / "home")
    try:
        r = d.run("up", str(t), "--name", "ext", "--yes", check=False)
        assert r.returncode == 1
        assert "cache[0]" in r.stderr and "the cache's origin 127.0.0.1:9 does not answer from 127.77." in r.stderr, \
            r.stderr
        assert "Traceback" not in r.stderr
        assert processes_of(d.home) == {}
    finally:
        d.run("destroy", "ext", "--yes", check=False)
        kill_leftovers(d.home)
