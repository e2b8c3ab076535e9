"""dodas.outbound, the one way a server's worker reaches a URL a user named, and
configure/helmrepo.py, the charts it fetches for Helm: every form of an address
of the server's own network refused before a connection is made (the listener
records connections as they are accepted), redirects checked at each hop, the
operator's fetch_allow honoured, sizes bounded, and nothing the far end said
quoted."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
import yaml
from support.listener import INTERNAL, LOOPBACK_FORMS

from dodas import outbound
from dodas.configure import helmrepo
from dodas.helm import CHARTS, ValuesError, bundled_chart


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_every_form_of_loopback_is_refused_before_connecting(listener, host):
    internal = listener()
    internal.route("/secret.yaml")
    with pytest.raises(outbound.FetchError) as exc:
        outbound.fetch(f"http://{host}:{internal.port}/secret.yaml")
    assert "address of the server's network" in str(exc.value) and "fetch_allow" in str(exc.value)
    assert internal.connections == []


@pytest.mark.parametrize("url,kind", [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"), ("http://169.254.1.1/", "link-local"),
    ("http://10.1.2.3/", "private"), ("http://192.168.1.1/", "private"), ("http://100.64.0.1/", "non-public"),
    ("http://224.0.0.1/", "multicast"), ("http://[ff02::1]/", "multicast"),
    ("http://[64:ff9b::7f00:1]/", "loopback"), ("http://[2002:7f00:1::]/", "loopback"),
])
def test_metadata_private_multicast_and_embedded_addresses_are_refused(url, kind):
    why = outbound.refusal(url, [])
    assert why is not None and f"{kind} address of the server's network" in why, why


def test_schemes_other_than_http_are_refused():
    for url in ("file:///etc/passwd", "ftp://example.org/x", "gopher://127.0.0.1:70/", "http:///nohost"):
        with pytest.raises(outbound.FetchError):
            outbound.fetch(url)
    assert outbound.refusal("file:///etc/passwd", []) == "is not http:// or https://"


def test_an_allowed_address_is_fetched(listener):
    internal = listener()
    internal.route("/values.yaml", "replicas: 2\n")
    got = outbound.fetch(internal.url("/values.yaml"), ["127.0.0.1"])
    assert got.body == b"replicas: 2\n"
    assert [h.path for h in internal.requests] == ["/values.yaml"] and internal.requests[0].agent == "dodas"
    internal.route("/n.yaml", "n: 1\n")  # a network holding the address allows it as well
    assert outbound.fetch(internal.url("/n.yaml"), ["127.0.0.0/8"]).body == b"n: 1\n"
    assert outbound.fetch(internal.url("/n.yaml", host="localhost"), ["localhost"]).body == b"n: 1\n"


def test_each_redirect_hop_is_checked(listener):
    """A host the operator allows (standing for a public one) redirects to another
    address of the server that is not allowed: nothing reaches it."""
    public, internal = listener("127.0.0.1"), listener("127.0.0.2")
    secret = internal.route("/secret.yaml")
    public.redirect("/values.yaml", secret)
    with pytest.raises(outbound.FetchError) as exc:
        outbound.fetch(public.url("/values.yaml"), ["127.0.0.1"])
    assert str(exc.value).startswith("redirects to http://127.0.0.2, which reaches 127.0.0.2, a loopback")
    assert internal.connections == [] and INTERNAL not in str(exc.value)
    public.redirect("/relative", "/values2.yaml", 307)  # an allowed redirect is followed
    public.route("/values2.yaml", "a: 1\n")
    assert outbound.fetch(public.url("/relative"), ["127.0.0.1"]).body == b"a: 1\n"
    public.redirect("/loop", "/loop")
    with pytest.raises(outbound.FetchError, match="redirects more than 5 times"):
        outbound.fetch(public.url("/loop"), ["127.0.0.1"])


def test_answers_are_never_quoted_and_sizes_are_bounded(listener):
    internal = listener()
    internal.route("/denied", f"denied: {INTERNAL}", status=403)
    with pytest.raises(outbound.FetchError) as exc:
        outbound.fetch(internal.url("/denied"), ["127.0.0.1"])
    assert str(exc.value) == "the server at 127.0.0.1 answered 403"
    internal.route("/big", b"x" * 2000)
    with pytest.raises(outbound.FetchError, match="sent more than 1000 bytes"):
        outbound.fetch(internal.url("/big"), ["127.0.0.1"], max_bytes=1000)
    assert outbound.fetch(internal.url("/big"), ["127.0.0.1"], max_bytes=2000).body == b"x" * 2000


def test_a_closed_port_is_named_not_hidden():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(outbound.FetchError, match=r"the server at 127.0.0.1 could not be reached \(Connection "):
        outbound.fetch(f"http://127.0.0.1:{port}/", ["127.0.0.1"])


# -- charts: the repository's index and archive, fetched by dodas -----------------------------------
def _archive(name: str = "inference") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(CHARTS / name, arcname=name)
    return buf.getvalue()


def _repo(listener, name: str = "inference", digest: str | None = None):
    repo = listener()
    data = _archive(name)
    repo.route(f"/charts/{name}-1.0.0.tgz", data)
    entries = {name: [{"version": "1.0.0", "urls": [f"charts/{name}-1.0.0.tgz"],
                       "digest": digest or hashlib.sha256(data).hexdigest()},
                      {"version": "0.9.0", "urls": [f"charts/{name}-0.9.0.tgz"]},
                      {"version": "2.0.0-rc1", "urls": [f"charts/{name}-2.0.0-rc1.tgz"]}]}
    repo.route("/index.yaml", yaml.safe_dump({"apiVersion": "v1", "entries": entries}))
    return repo, data


def test_a_chart_is_fetched_from_an_allowed_repository(listener):
    repo, data = _repo(listener)
    name, got = helmrepo.chart_archive(repo.url("/"), "inference", None, ("127.0.0.1",))
    assert (name, got) == ("inference-1.0.0.tgz", data), "the newest that is no pre-release"
    assert [h.path for h in repo.requests] == ["/index.yaml", "/charts/inference-1.0.0.tgz"]
    assert {h.agent for h in repo.requests} == {"dodas"}
    with pytest.raises(ValuesError, match="is a range: a server installs an exact version"):
        helmrepo.chart_archive(repo.url("/"), "inference", "^1.0", ("127.0.0.1",))
    with pytest.raises(ValuesError, match="has no version 3.0.0 of inference"):
        helmrepo.chart_archive(repo.url("/"), "inference", "3.0.0", ("127.0.0.1",))
    with pytest.raises(ValuesError, match="has no chart other"):
        helmrepo.chart_archive(repo.url("/"), "other", None, ("127.0.0.1",))


def test_a_chart_repository_of_the_servers_network_is_never_reached(listener):
    repo, _ = _repo(listener)
    with pytest.raises(ValuesError, match="index of repository .* could not be fetched: reaches 127.0.0.1"):
        helmrepo.chart_archive(repo.url("/"), "inference", None, ())
    assert repo.connections == []


def test_an_archive_that_does_not_match_its_digest_is_refused(listener):
    repo, _ = _repo(listener, digest="0" * 64)
    with pytest.raises(ValuesError, match="does not match the digest"):
        helmrepo.chart_archive(repo.url("/"), "inference", "1.0.0", ("127.0.0.1",))


def test_an_index_that_is_a_billion_laughs_is_refused(listener):
    repo = listener()
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join('*' + p for _ in range(10))}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    repo.route("/index.yaml", laughs + "entries: {}\n")
    with pytest.raises(ValuesError, match="not YAML within the limits of a server") as exc:
        helmrepo.chart_archive(repo.url("/"), "inference", None, ("127.0.0.1",))
    assert "x, x" not in str(exc.value)


# -- bundled charts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("chart", ["dodas/../../configure/charts/htcondor", "dodas/..", "dodas/", "dodas/./htcondor",
                                   "dodas/htcondor/", "dodas/../charts/htcondor", "dodas//etc"])
def test_bundled_chart_names_stay_inside_the_bundled_charts(chart):
    assert bundled_chart(chart) is None


def test_bundled_charts_are_found():
    assert bundled_chart("dodas/htcondor") == (CHARTS / "htcondor").resolve()
