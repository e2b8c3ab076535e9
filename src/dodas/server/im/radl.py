"""dodas's machines described in RADL, the language IM answers VM information in.

IM's client reads a VM's information with its RADL parser: `getinfo` prints it
and selects by system name (`-s NODE`), `ssh`/`sshvm` find the public address
(an interface on a network with `outbound = 'yes'`), the login user and the SSH
port (a public network's `outports`). An infrastructure's RADL starts with a
`description` whose `name` is what the client's `-n NAME` looks for (through
`GET /infrastructures?filter=REGEX`, matched against this text as IM matches
its own RADL).

Only what a caller may read goes here: addresses, state, the provider's id,
the login user and port. Never a key or a password: the client's `ssh` then
builds a command that uses the caller's own key.
"""

from __future__ import annotations

import re
from typing import Any


#: the longest filter taken: a regular expression runs over every listed infrastructure's text
MAX_FILTER = 500


def quoted(value: Any) -> str:
    """A RADL string: single quotes, with backslashes and quotes escaped."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _networks(public_port: int | None) -> str:
    outports = f" and outports = '{public_port}-22'" if public_port not in (None, 22) else ""
    return f"network public ( outbound = 'yes'{outports} )\nnetwork private ( )\n"


def vm(machine: dict[str, Any], number: int, state: str) -> str:
    """One VM as IM describes it: its networks, then `system NODE ( ... )`."""
    features: list[str] = []
    nic = 0
    for net, key in (("public", "public_address"), ("private", "private_address")):
        if machine.get(key):
            features += [f"net_interface.{nic}.connection = {quoted(net)}",
                         f"net_interface.{nic}.ip = {quoted(machine[key])}"]
            nic += 1
    if not nic and machine.get("address"):
        features += ["net_interface.0.connection = 'private'", f"net_interface.0.ip = {quoted(machine['address'])}"]
    features += [f"state = {quoted(state)}", f"instance_name = {quoted(machine['id'])}",
                 f"vm_id = {quoted(number)}"]
    if machine.get("provider_id"):
        features.append(f"instance_id = {quoted(machine['provider_id'])}")
    if machine.get("ssh_user"):
        features.append(f"disk.0.os.credentials.username = {quoted(machine['ssh_user'])}")
    port = machine.get("ssh_port") if isinstance(machine.get("ssh_port"), int) else None
    body = " and\n".join(features)
    return _networks(port if machine.get("public_address") else None) + \
        f"system {_ident(machine['node'])} (\n{body}\n)\n"


def features(text: str) -> dict[str, str]:
    """The features of the one system in a VM's RADL as `vm` writes it (its
    values are quoted strings), by name: IM's per-VM property call."""
    body = text.split("(\n", 1)[-1]
    out: dict[str, str] = {}
    for m in re.finditer(r"^([A-Za-z0-9_.]+) = '((?:[^'\\]|\\.)*)'", body, re.M):
        out[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(2))
    return out


def infrastructure(name: str, title: str | None, machines: list[dict[str, Any]]) -> str:
    """The infrastructure as IM's `radl` property gives it: a description named
    by the template's `metadata.infra_name` (as IM names a TOSCA infrastructure)
    or else by the deployment's name, the networks, and each node's system with
    the number of its VMs."""
    counts: dict[str, int] = {}
    for m in machines:
        counts[m["node"]] = counts.get(m["node"], 0) + 1
    text = f"description desc (\nname = {quoted(title or name)} and\nid = {quoted(name)}\n)\n"
    text += _networks(None)
    for node, n in counts.items():
        text += f"system {_ident(node)} (\ninstance_name = {quoted(node)}\n)\n"
    text += "".join(f"deploy {_ident(node)} {n}\n" for node, n in counts.items())
    return text


#: how long one search of a user's filter may take: `regex` stops a pattern that
#: backtracks catastrophically ((a|aa)+$ and its kind) instead of holding a worker
FILTER_TIMEOUT_S = 0.05


class Filter:
    """The `filter` of a listing: a user's regular expression, searched with a
    time bound (Python's `re` has none, so a hostile pattern would hold the
    worker thread that runs it for as long as it likes)."""

    def __init__(self, pattern: str) -> None:
        import regex

        if len(pattern) > MAX_FILTER:
            raise ValueError(f"the filter is {len(pattern)} characters long: at most {MAX_FILTER} are taken")
        try:
            self._compiled = regex.compile(pattern, flags=regex.VERSION0)
        except regex.error as exc:
            raise ValueError(f"the filter is not a regular expression: {exc}") from None

    def search(self, text: str) -> bool:
        """Whether the pattern is found in `text`; ValueError when it took too long."""
        try:
            return self._compiled.search(text, timeout=FILTER_TIMEOUT_S) is not None
        except TimeoutError:
            raise ValueError(f"the filter took more than {FILTER_TIMEOUT_S * 1000:g} ms on one infrastructure: "
                             "simplify it (a plain name is enough to select one)") from None


def compiled_filter(pattern: str) -> Filter:
    """The `filter` of a listing; ValueError says what is wrong with it."""
    return Filter(pattern)


def _ident(node: str) -> str:
    """A node's name as a RADL identifier (letters, digits, `_`, `.`, `-`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", node) or "_"
