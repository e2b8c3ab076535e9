"""XRootD's configuration files for dodas's origin, redirector and XCache roles.

One home for what an XRootD service is told, so that the roles (local provider and
VMs), the tests and the benchmark's hand-made set-up write the same directives.
Plain functions of plain values: the playbooks call them through the
`dodas_xrootd` filter, on the machine that runs Ansible.

Facts of XRootD 5.5 (Debian's xrootd-server) these rely on:
- xrootd and cmsd refuse to run as uid 0 and always listen on every address of
  their host (there is no bind-address directive), so a service is reached at its
  instance's address but its port must be free on the whole host;
- the proxy file cache wants at least 1 GiB of RAM and purges at most once a
  minute; `pfc.diskusage LOW HIGH files BASELINE NOMINAL MAX`: when the cache's
  files pass MAX it removes the least recently used down to NOMINAL, and when the
  disk itself passes HIGH (a fraction of it, other programs' files included)
  down to BASELINE;
- the sss protocol authenticates with a shared keytab; a client (the proxy's
  XrdCl) finds it through XrdSecPROTOCOL / XrdSecSSSKT in its environment.
"""

from __future__ import annotations

import hashlib

#: the disk watermarks of the cache's filesystem as a whole: a disk nearly full
#: for any reason makes the cache give space back
DISK_LOW, DISK_HIGH = 0.90, 0.95
PURGE_INTERVAL = 60  # seconds: XRootD's shortest
KEY_NAME = "dodas"
MANAGER_STARTUP = 5  # seconds


def keytab(secret: str) -> str:
    """An sss keytab line for the deployment's secret, the same on every host that
    is given the secret (key and key number derived from it, never the secret
    itself): `0 u:USER g:GROUP n:NAME N:NUMBER c:CREATED e:EXPIRES f:FLAGS k:KEY`."""
    key = hashlib.sha256(b"dodas-xrootd-sss\0" + secret.encode()).hexdigest()
    number = int(hashlib.sha256(b"dodas-xrootd-sss-id\0" + secret.encode()).hexdigest()[:15], 16)
    return f"0 u:{KEY_NAME} g:{KEY_NAME} n:{KEY_NAME} N:{number} c:1700000000 e:0 f:0 k:{key}\n"


def _common(admin_dir: str, port: int | str) -> list[str]:
    return [f"all.adminpath {admin_dir}", f"all.pidpath {admin_dir}", f"xrd.port {port}"]


def _sss_server(keytab_path: str) -> list[str]:
    """Only clients holding the deployment's key get in."""
    return ["xrootd.seclib libXrdSec.so", f"sec.protocol sss -s {keytab_path}", "sec.protbind * only sss"]


def origin_config(*, export_dir: str, admin_dir: str, port: int, keytab_path: str,
                  manager: str | None = None) -> str:
    """A data server exporting `export_dir` read-only; with `manager` (HOST:CMSPORT)
    a server of that redirector's cluster, its port chosen at start and reported
    to the manager by its cmsd."""
    lines = _common(admin_dir, "any" if manager else port)
    lines += ["all.export / nolock r/o", f"oss.localroot {export_dir}"]
    if manager:
        host, cms_port = manager.rsplit(":", 1)
        lines += ["all.role server", f"all.manager {host}:{cms_port}"]
    lines += _sss_server(keytab_path)
    return "\n".join(lines) + "\n"


def redirector_config(*, admin_dir: str, port: int, cms_port: int, keytab_path: str, address: str) -> str:
    """xrootd and cmsd of a manager, both reading this file: each its own port."""
    lines = [f"all.adminpath {admin_dir}", f"all.pidpath {admin_dir}",
             f"xrd.port {port} if exec xrootd", f"xrd.port {cms_port} if exec cmsd",
             "all.export / nolock r/o", "all.role manager", f"all.manager {address}:{cms_port}",
             # a manager waits 90 s by default for its servers before it redirects anyone
             f"cms.delay startup {MANAGER_STARTUP}"]
    lines += _sss_server(keytab_path)
    return "\n".join(lines) + "\n"


def cache_limits(size_bytes: int, high: float, low: float, block_bytes: int) -> tuple[int, int, int]:
    """(baseline, nominal, max) in bytes (written in KiB: XRootD reads them with a
    unit): the cache's files purged from high x size down to low x size; when the
    disk itself fills, down to half of that."""
    if not 0 < low < high <= 1:
        raise ValueError(f"low_watermark ({low}) must be below high_watermark ({high}), both in (0, 1]")
    nominal, maximum = int(size_bytes * low), int(size_bytes * high)
    if maximum - nominal < block_bytes:
        raise ValueError(f"the watermarks {low} and {high} of {size_bytes} bytes are less than one block "
                         f"({block_bytes} bytes) apart")
    return nominal // 2, nominal, maximum


def cache_config(*, origin: str, cache_dir: str, admin_dir: str, port: int, size_bytes: int,
                 high: float, low: float, block_bytes: int, ram_bytes: int) -> str:
    """An XCache (xrootd with the proxy file cache) in front of `origin` (HOST:PORT)."""
    baseline, nominal, maximum = cache_limits(size_bytes, high, low, block_bytes)
    lines = _common(admin_dir, port)
    lines += [
        "all.export / nolock",
        "ofs.osslib libXrdPss.so",
        "pss.cachelib libXrdPfc.so",
        f"pss.origin {origin}",
        f"oss.localroot {cache_dir}",
        f"pfc.ram {max(ram_bytes // 2**20, 1024)}m",
        f"pfc.blocksize {block_bytes // 1024}k",
        f"pfc.diskusage {DISK_LOW} {DISK_HIGH} files {baseline // 1024}k {nominal // 1024}k {maximum // 1024}k "
        f"purgeinterval {PURGE_INTERVAL}",
        "pfc.trace info",
    ]
    return "\n".join(lines) + "\n"


def client_env(keytab_path: str) -> dict[str, str]:
    """What a client (the cache's proxy, a check's xrdcp) needs to authenticate."""
    return {"XrdSecPROTOCOL": "sss", "XrdSecSSSKT": keytab_path}


def probe_name(deployment_id: str) -> str:
    """The file an origin writes into its export for the cache's verification:
    named per deployment, so that two deployments may export one directory."""
    return f".dodas-probe-{deployment_id}"


def probe_content(deployment_id: str) -> str:
    """The probe's bytes: 64 KiB that depend on the deployment (not a secret), the
    same on every data server of a cluster, whichever the redirector picks."""
    chunk = hashlib.sha256(deployment_id.encode()).hexdigest() + "\n"
    return (chunk * (65536 // len(chunk) + 1))[:65536]


def admin_dir(instance_dir: str) -> str:
    """Where an instance's xrootd and cmsd keep their sockets: a short path of its
    own under /tmp, since a socket's path may not pass 107 bytes and an instance's
    directory can be long (it is removed with the instance)."""
    return f"/tmp/dodas-xrd-{hashlib.sha256(instance_dir.encode()).hexdigest()[:20]}"
