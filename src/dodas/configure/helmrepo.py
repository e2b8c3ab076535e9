"""A chart of a repository, fetched by dodas on a server (never by Helm).

`helm repo add URL` and `helm upgrade --install REPO/NAME` would make Helm
reach whatever a user's template names, resolving the name itself: on a shared
server that is the server's own network (services/untrusted.py). So a server's
worker reads the repository's `index.yaml` and the chart's archive through
dodas.outbound (public or `fetch_allow`ed addresses only, each hop, one
resolution, limits), checks the archive against the index's digest, and Helm
installs the local archive the release's files hold. On a user's own machine
Helm fetches as it always did (configure/helm.py decides).
"""

from __future__ import annotations

import functools
import hashlib
import re
from urllib.parse import urljoin

from dodas import outbound
from dodas.errors import DodasError
from dodas.helm import ValuesError
from dodas.settings import Limits
from dodas.yamlsource import load_yaml

INDEX_MAX_BYTES = 10_000_000
#: an index's YAML, bounded like a template's (aliases expanded, depth), as it is a stranger's
INDEX_LIMITS = Limits(max_file_bytes=INDEX_MAX_BYTES, max_yaml_nodes=2_000_000, max_yaml_depth=20)
ARCHIVE_MAX_BYTES = 20_000_000
_EXACT = re.compile(r"v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.+-]*)?")


def chart_archive(repo_url: str, chart: str, version: str | None, allow: tuple[str, ...]) -> tuple[str, bytes]:
    """(file name, archive) of `chart` in the repository at `repo_url`: the
    version asked (exactly), else the newest that is not a pre-release."""
    return _archive(repo_url, chart, str(version) if version else None, tuple(allow))


@functools.lru_cache(maxsize=16)  # the install play reads its release several times
def _archive(repo_url: str, chart: str, version: str | None, allow: tuple[str, ...]) -> tuple[str, bytes]:
    if version is not None and not _EXACT.fullmatch(version):
        raise ValuesError(f'version "{version}" is a range: a server installs an exact version of a chart')
    index_url = repo_url.rstrip("/") + "/index.yaml"
    try:
        index = outbound.fetch(index_url, allow, max_bytes=INDEX_MAX_BYTES)
    except outbound.FetchError as exc:
        raise ValuesError(f"the index of repository {repo_url} could not be fetched: {exc}") from None
    entries = _entries(index.body, chart, repo_url)
    entry = _choose(entries, version, chart, repo_url)
    urls = entry.get("urls") or []
    if not urls or not isinstance(urls[0], str):
        raise ValuesError(f"repository {repo_url} lists no archive for {chart} {entry.get('version')}")
    url = urljoin(index.url, urls[0])
    try:
        archive = outbound.fetch(url, allow, max_bytes=ARCHIVE_MAX_BYTES)
    except outbound.FetchError as exc:
        raise ValuesError(f"the archive of {chart} {entry.get('version')} could not be fetched: {exc}") from None
    digest = entry.get("digest")
    if isinstance(digest, str) and digest and hashlib.sha256(archive.body).hexdigest() != digest.lower():
        raise ValuesError(f"the archive of {chart} {entry.get('version')} does not match the digest its "
                          f"repository's index gives")
    return f"{chart}-{entry.get('version')}.tgz", archive.body


def _entries(body: bytes, chart: str, repo_url: str) -> list[dict]:
    try:
        data, _ = load_yaml(body.decode("utf-8"), "index.yaml", limits=INDEX_LIMITS, lenient_duplicates=True)
    except (DodasError, UnicodeDecodeError):  # its text is the repository's: not quoted
        raise ValuesError(f"repository {repo_url} answered an index.yaml that is not YAML within the limits "
                          "of a server") from None
    entries = (data.get("entries") or {}).get(chart) if isinstance(data, dict) and \
        isinstance(data.get("entries"), dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValuesError(f"repository {repo_url} has no chart {chart}")
    return [e for e in entries if isinstance(e, dict)]


def _choose(entries: list[dict], version: str | None, chart: str, repo_url: str) -> dict:
    if version is not None:
        for e in entries:
            if str(e.get("version", "")).lstrip("v") == version.lstrip("v"):
                return e
        raise ValuesError(f"repository {repo_url} has no version {version} of {chart}")
    stable = [e for e in entries if "-" not in str(e.get("version", ""))] or entries
    return max(stable, key=lambda e: _key(str(e.get("version", ""))))


def _key(version: str) -> tuple:
    core = version.lstrip("v").split("+", 1)[0].split("-", 1)[0]
    return tuple(int(p) if p.isdigit() else -1 for p in core.split("."))
