"""The one way a server's worker reaches a URL a user named (values files, chart
repositories' indexes, chart archives): nothing of the server's own network.

A user of a shared server may name any URL in a template; fetched naively (urllib),
`http://127.0.0.1:PORT/` reaches a service of the server, a public host's redirect
does the same, and a name resolved once to check and again to connect can answer
a public address the first time and 127.0.0.1 the second (DNS rebinding). So:

- only http and https (the caller's schemes);
- the host is resolved once, every address it has must be public (not loopback,
  private, link-local, multicast, unspecified, reserved, nor an IPv6 form that
  embeds such an IPv4 address), and the connection is made to that address, the
  TLS name and the Host header still being the name;
- each redirect hop is checked the same way, up to `MAX_REDIRECTS`;
- the operator's `fetch_allow` (host names, addresses, networks such as
  10.1.0.0/16) names the exceptions;
- the answer is bounded in size and in time, and never quoted: an error says
  what happened ("the server at HOST answered 404"), not what it answered.

`refusal` is the same address rule for URLs checked at plan time
(services/untrusted.py), so that one rule decides both. A neutral module: it
imports nothing of dodas, and configure/ and services/ both use it.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

MAX_BYTES = 1_000_000
TIMEOUT_S = 15.0
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = (301, 302, 303, 307, 308)
#: NAT64's well-known prefix: 64:ff9b::7f00:1 is 127.0.0.1 where NAT64 runs
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: where clouds answer a machine's questions about itself (credentials among them)
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
             ipaddress.ip_address("169.254.170.2")}


class FetchError(Exception):
    """A URL that was refused or could not be fetched; the message is written to be
    shown to the user who named it and quotes nothing the far end sent."""


@dataclass(frozen=True)
class Fetched:
    url: str  # the last hop's URL (after redirects)
    body: bytes


def kind(address: Address) -> str | None:
    """What makes `address` one of the server's own network (or None for a
    public address), for the IPv4 address an IPv6 form embeds too."""
    for a in reversed(_forms(address)):  # the embedded IPv4 address says most
        if a.is_unspecified:
            return "unspecified"
        if a.is_loopback:
            return "loopback"
        if a in _METADATA:
            return "cloud metadata"
        if a.is_link_local:
            return "link-local"
        if a.is_multicast:
            return "multicast"
        if a.is_private:
            return "private"
        if not a.is_global or a.is_reserved:
            return "non-public"
    return None


def _forms(address: Address) -> list[Address]:
    """The address and every IPv4 address it stands for (IPv4-mapped, 6to4,
    Teredo, NAT64): each must be public."""
    out: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            out.append(address.ipv4_mapped)
        if address.sixtofour:
            out.append(address.sixtofour)
        if address.teredo:
            out.extend(address.teredo)
        if address in _NAT64:
            out.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return out


def allowed(host: str, address: Address | None, allow: Iterable[str]) -> bool:
    """Whether the operator's `fetch_allow` names the host or a network holding
    the address."""
    for item in allow:
        item = str(item).strip()
        if item and item.lower() == host.lower().strip("[]"):
            return True
        if address is None:
            continue
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            continue
        if any(a in net for a in _forms(address) if a.version == net.version):
            return True
    return False


def resolve(host: str, port: int, allow: Iterable[str]) -> list[Address]:
    """The addresses the connection is made to (the first that answers), the
    host resolved this once; refused (FetchError) unless every address of the
    host is public or allowed: a name with a private address among public ones
    could be answered with it next time."""
    allow = list(allow)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise FetchError(f"names a host, {host}, that cannot be resolved "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        why = kind(address)
        if why and not allowed(host, address, allow):
            named = "" if address.compressed == host.strip("[]").lower() else f" (the address of {host})"
            article = "an" if why[0] in "aeiou" else "a"
            raise FetchError(f"reaches {address}{named}, {article} {why} address of the server's network: "
                             "the server's operator may allow it with fetch_allow")
        addresses.append(address)
    if not addresses:
        raise FetchError(f"names a host, {host}, with no address")
    return addresses


def _target(url: str, schemes: tuple[str, ...]) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL the server may try, or FetchError."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise FetchError(f"is not {' or '.join(s + '://' for s in schemes)}")
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise FetchError("has a port that is not a number between 0 and 65535") from None
    if not host:
        raise FetchError("names no host")
    return scheme, host, port or DEFAULT_PORTS.get(scheme, 0)


def refusal(url: str, allow: Iterable[str], schemes: Iterable[str] = ("http", "https"),
            ports: dict[str, int] | None = None) -> str | None:
    """Why `url` may not be reached from the server (or None): the check made at
    plan time, the fetch making it again at each hop. `ports`: the schemes'
    default ports, when they are not http's and https's."""
    try:
        scheme, host, port = _target(url, tuple(schemes))
        if urlsplit(url).port is None and ports:
            port = ports.get(scheme, port)
        resolve(host, port, allow)
    except FetchError as exc:
        return str(exc)
    return None


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to an address resolved (and checked) beforehand."""

    def __init__(self, host: str, port: int, addresses: list[Address], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        failed: OSError | None = None
        for address in self.addresses:  # each one checked: none is resolved again
            try:
                self.sock = socket.create_connection((str(address), self.port), self.timeout)
                return
            except OSError as exc:
                failed = exc
        raise failed or OSError("no address")


class _PinnedTLS(_Pinned):
    default_port = 443

    def connect(self) -> None:
        super().connect()
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def fetch(url: str, allow: Iterable[str] = (), *, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT_S,
          schemes: Iterable[str] = ("http", "https")) -> Fetched:
    """GET `url` from the server: every hop checked (see the module's text), the
    body at most `max_bytes`, the whole fetch at most `timeout` seconds.
    Messages name the URL's host and what went wrong, never the body."""
    allow, schemes = list(allow), tuple(schemes)
    deadline = time.monotonic() + timeout
    for hop in range(MAX_REDIRECTS + 1):
        try:
            scheme, host, port = _target(url, schemes)
            addresses = resolve(host, port, allow)
        except FetchError as exc:
            if not hop:
                raise
            raise FetchError(f"redirects to {_where(url)}, which {exc}") from None
        status, location, body = _get(scheme, host, port, addresses, url, max_bytes, deadline)
        if status in _REDIRECTS and location:
            url = urljoin(url, location)
            continue
        if status in _REDIRECTS:
            raise FetchError(f"the server at {host} answered {status} without a Location")
        if status != 200:
            raise FetchError(f"the server at {host} answered {status}")
        return Fetched(url, body)
    raise FetchError(f"redirects more than {MAX_REDIRECTS} times")


def _get(scheme: str, host: str, port: int, addresses: list[Address], url: str, max_bytes: int,
         deadline: float) -> tuple[int, str | None, bytes]:
    """One GET: (status, Location, body); the body is read only from a 200."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(f"the server at {host} did not answer in time")
    conn = (_PinnedTLS if scheme == "https" else _Pinned)(host, port, addresses, left)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers={"User-Agent": "dodas", "Accept-Encoding": "identity"})
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, resp.getheader("Location"), b""
        declared = resp.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"the server at {host} sent more than {max_bytes} bytes")
        chunks, size = [], 0
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"the server at {host} did not answer in time")
            chunk = resp.read(min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"the server at {host} sent more than {max_bytes} bytes")
        return 200, None, b"".join(chunks)
    except ssl.SSLError as exc:
        raise FetchError(f"the TLS connection to {host} failed ({exc.reason or 'handshake'})") from None
    except (TimeoutError, socket.timeout):
        raise FetchError(f"the server at {host} did not answer in time") from None
    except OSError as exc:
        raise FetchError(f"the server at {host} could not be reached ({exc.strerror or type(exc).__name__})") \
            from None
    except http.client.HTTPException as exc:
        raise FetchError(f"the server at {host} did not answer HTTP ({type(exc).__name__})") from None
    finally:
        conn.close()


def _where(url: str) -> str:
    """A URL as a message names a redirect's target: scheme and host, never its
    user name, password, path or query."""
    parts = urlsplit(url)
    try:
        host = parts.hostname
    except ValueError:
        host = None
    return f"{parts.scheme}://{host}" if host else "a URL with no host"
