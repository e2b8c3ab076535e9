"""IM's `Authorization` header: who is calling, with the same OIDC validation as
every face of the server.

IM's clients send their whole auth file in the header, on one line: credential
lines separated by the two characters `\\n`, each line `key = value` pairs
separated by `;` (a value may be quoted with `'` or `"` to hold a `;`; the
three characters `\\\\n` stand for a newline inside a value); or, since IM
1.19.1, a JSON list of objects. `Bearer TOKEN` is accepted as IM accepts it.

The caller is the `InfrastructureManager` line's `token`, an OIDC access token,
checked by `app.state.identify` as the v1 API checks a bearer token. IM's user
names and passwords (and `Basic`) prove nothing to this server: 401, saying it
takes OIDC tokens. `file(...)` and `command(...)` values are expanded by IM's
client on the user's machine; arriving here in that line they are a mistake: 400.

Other lines are cloud credentials. This server deploys on its operator's
providers, so they are refused (403) unless the operator set
`im_cloud_credentials: ignore`, which drops them. Either way they are read no
further than their `id` and `type`, never stored, logged or quoted: every
message names a line by its number, id or type only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from fastapi import Request

from dodas.server import access
from dodas.server.access import Caller, Refused

IM_TYPE = "infrastructuremanager"
#: an auth line's id, as IM requires it: only such an id is ever named in a message
_ID = re.compile(r"[a-zA-Z_.][\w.-]{0,63}")
_TYPE = re.compile(r"[A-Za-z][\w.-]{0,39}")
_CLIENT_SIDE = re.compile(r"(file|command)\s*\(.*\)", re.DOTALL)
#: stands for the three characters backslash, backslash, n while lines are split
_NEWLINE = "\x00"


@dataclass(frozen=True)
class Credential:
    """One credential line; its values are never shown (repr=False)."""

    number: int
    values: dict[str, str] = field(repr=False)

    @property
    def type(self) -> str:
        return self.values.get("type", "")

    def named(self) -> str:
        """How a message may name the line: its id and type when they are plain names, else its number."""
        parts = []
        if _ID.fullmatch(self.values.get("id", "")):
            parts.append(f'"{self.values["id"]}"')
        if _TYPE.fullmatch(self.type):
            parts.append(f"(type {self.type})")
        return " ".join(parts) if parts else f"number {self.number}"


def parse(header: str) -> list[Credential]:
    """The credential lines of an IM Authorization header (without its scheme, if any)."""
    text = header.strip()
    if text.startswith("["):
        return _parse_json(text)
    lines = text.replace("\\\\n", _NEWLINE).split("\\n")
    out = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        values: dict[str, str] = {}
        for n, item in enumerate(_split(line, number), 1):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise Refused(400, f"the Authorization header's line {number}, item {n}, is not key = value")
            values[key] = _unquote(value.strip()).replace(_NEWLINE, "\n")
        out.append(Credential(number, values))
    return out


def _parse_json(text: str) -> list[Credential]:
    try:
        items = json.loads(text)
    except ValueError:
        raise Refused(400, "the Authorization header starts with [ but is not a JSON list") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Refused(400, "the Authorization header's JSON is not a list of objects")
    out = []
    for number, item in enumerate(items, 1):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in item.items()):
            raise Refused(400, f"the Authorization header's credential {number} has a value that is not a string")
        out.append(Credential(number, dict(item)))
    return out


def _split(line: str, number: int) -> list[str]:
    """`key = value` items on `;`, outside quotes."""
    items, current, quote = [], [], ""
    for ch in line:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ";":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote:
        raise Refused(400, f"the Authorization header's line {number} has a quote that is not closed")
    items.append("".join(current))
    return [i for i in items if i.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def caller(request: Request) -> Caller:
    """The caller an IM request's Authorization header proves (Refused otherwise)."""
    cfg = request.app.state.config
    header = request.headers.get("authorization", "").strip()
    if not header:
        if not cfg.authenticated:
            return access.LOCAL
        raise Refused(401, "an Authorization header is needed: type = InfrastructureManager; token = ACCESS_TOKEN "
                           "(an OIDC access token), or Bearer ACCESS_TOKEN")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "basic":
        raise Refused(401, "this server takes OIDC access tokens, not IM user names and passwords: send "
                           "type = InfrastructureManager; token = ACCESS_TOKEN, or Bearer ACCESS_TOKEN")
    if scheme.lower() == "bearer":
        credentials = [Credential(1, {"type": "InfrastructureManager", "token": rest.strip()})]
    else:
        credentials = parse(header)
    for c in credentials:
        if not c.type:
            raise Refused(400, f"the Authorization header's line {c.number} has no type")
    im_lines = [c for c in credentials if c.type.lower() == IM_TYPE]
    clouds = [c for c in credentials if c.type.lower() != IM_TYPE]  # read no further than id and type
    for c in im_lines:
        for key, value in c.values.items():
            if _CLIENT_SIDE.fullmatch(value.strip()):
                raise Refused(400, f'the Authorization header\'s line {c.named()}: "{key}" is a file(...) or '
                                   "command(...) value, which IM's client expands on your machine: send the value")
    if not im_lines:
        raise Refused(401, "the Authorization header has no InfrastructureManager line: add "
                           "type = InfrastructureManager; token = ACCESS_TOKEN")
    token = im_lines[0].values.get("token", "").strip()
    if not token:
        raise Refused(401, "this server takes OIDC access tokens, not IM user names and passwords: the "
                           "InfrastructureManager line needs token = ACCESS_TOKEN")
    who = request.app.state.identify(token)
    if clouds and cfg.im_cloud_credentials != "ignore":
        names = ", ".join(c.named() for c in clouds)
        raise Refused(403, f"this server deploys on its operator's providers, not with users' own cloud "
                           f"credentials: remove the credential line(s) {names} from the Authorization header")
    return who
