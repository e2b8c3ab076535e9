"""TFaaS's Python client's requests (vkuznet/TFaaS src/python/tfaas_client.py),
sent the way it sends them. That client is not on PyPI and does not import on
Python 3 (it imports `mimetools`), so these functions rebuild its requests with
the library it uses there, urllib.request: the same routes, methods, headers
(User-Agent `tfaas-client/1.1::python/X.Y (USER)`, Accept, Content-Encoding),
multipart bodies laid out as its MultiPartForm lays them out (fields first, then
files; a file whose type guesses to application/octet-stream base64-encoded) and
the same X.509 setup: one PEM holding certificate and key (a proxy) loaded with
load_cert_chain, the server checked against the CA. One difference, on purpose:
the client pins PROTOCOL_TLSv1, which today's OpenSSL refuses on both ends, so
the context here is the default (TLS 1.2 or later); the HTTP bytes are the same."""

from __future__ import annotations

import binascii
import json
import mimetypes
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CLIENT = "tfaas-client/1.1::python/%s.%s" % sys.version_info[:2]
#: a boundary in mimetools.choose_boundary()'s shape (host ip, uid, pid, time, counter)
BOUNDARY = "127.0.0.1.1000.4242.1765000000.123.1"


def _agent() -> str:
    return "%s (%s)" % (CLIENT, os.environ.get("USER", ""))


class Form:
    """MultiPartForm of the client: fields, then files, CRLF-joined."""

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []
        self.files: list[tuple[str, str, str, bytes]] = []

    def add_field(self, name: str, value: str) -> None:
        self.fields.append((name, value))

    def add_file(self, field: str, filename: str, body: bytes) -> None:
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if mimetype == "application/octet-stream":
            body = binascii.b2a_base64(body)
        self.files.append((field, filename, mimetype, body))

    def content_type(self) -> str:
        return "multipart/form-data; boundary=%s" % BOUNDARY

    def body(self) -> bytes:
        lines: list[bytes] = []
        for name, value in self.fields:
            lines += [b"--" + BOUNDARY.encode(), b'Content-Disposition: form-data; name="%s"' % name.encode(), b"",
                      value.encode()]
        for field, filename, ctype, body in self.files:
            lines += [b"--" + BOUNDARY.encode(),
                      b'Content-Disposition: form-data; name="%s"; filename="%s"' % (field.encode(), filename.encode()),
                      b"Content-Type: " + ctype.encode(), b"", body]
        lines += [b"--" + BOUNDARY.encode() + b"--", b""]
        return b"\r\n".join(lines)


class Answer:
    """What came back: the status and the body (the client prints an error's body and exits 1)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def json(self) -> Any:
        return json.loads(self.body)


def getdata(url: str, headers: dict[str, Any], data: bytes | None, proxy: Path | None, ca: Path,
            method: str = "POST", check_hostname: bool = True) -> Answer:
    """The client's getdata: one urllib request, with the proxy as client certificate when given
    (the server checked against `ca`, and its name too unless check_hostname is false)."""
    if method == "GET":
        req = urllib.request.Request(url=url, headers=headers)
    else:
        req = urllib.request.Request(url=url, headers=headers, data=data, method=method)
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = check_hostname
    if proxy is not None:
        context.load_cert_chain(str(proxy))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor())
    try:
        with opener.open(req, timeout=300) as answer:
            return Answer(answer.status, answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())


def models(host: str, proxy: Path | None, ca: Path, check_hostname: bool = True) -> Answer:
    return getdata(host + "/models", {"Accept": "application/json", "User-Agent": _agent()}, json.dumps({}).encode(),
                   proxy, ca, "GET", check_hostname)


def delete(host: str, model: str, proxy: Path | None, ca: Path) -> Answer:
    form = Form()
    form.add_field("model", model)
    data = form.body()
    headers = {"User-Agent": _agent(), "Content-length": len(data), "Content-Type": form.content_type()}
    return getdata(host + "/delete", headers, data, proxy, ca, "DELETE")


def bundle(host: str, tarball: Path, proxy: Path | None, ca: Path) -> Answer:
    headers = {"User-Agent": _agent(), "Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    return getdata(host + "/upload", headers, tarball.read_bytes(), proxy, ca)


def upload(host: str, upload_json: Path, proxy: Path | None, ca: Path,
           check_hostname: bool = True) -> Answer:
    """--upload=upload.json: its model, labels and params are files (paths relative to the
    working directory, as the client opens them), every other key a field."""
    params = json.loads(upload_json.read_text())
    form = Form()
    for key, value in params.items():
        if key in ("model", "labels", "params"):
            form.add_file(key, value, (upload_json.parent / value).read_bytes())
        else:
            form.add_field(key, value)
    data = form.body()
    headers = {"User-Agent": _agent(), "Content-length": len(data), "Content-Type": form.content_type(),
               "Content-Encoding": "base64"}
    return getdata(host + "/upload", headers, data, proxy, ca, "POST", check_hostname)


def predict(host: str, input_json: Path, model: str, proxy: Path | None, ca: Path) -> Answer:
    params = json.loads(input_json.read_text())
    if model:
        params["model"] = model
    headers = {"Accept": "application/json", "User-Agent": _agent()}
    return getdata(host + "/json", headers, json.dumps(params).encode(), proxy, ca)


def predict_image(host: str, image: Path, model: str, proxy: Path | None, ca: Path) -> Answer:
    form = Form()
    form.add_file("image", image.name, image.read_bytes())
    form.add_field("model", model)
    data = form.body()
    headers = {"Accept": "application/json", "User-Agent": _agent(), "Content-length": len(data),
               "Content-Type": form.content_type()}
    return getdata(host + "/image", headers, data, proxy, ca)
