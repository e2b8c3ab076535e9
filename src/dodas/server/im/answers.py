"""IM's media types, in and out, and IM's error shape.

Out: URIs as `text/uri-list` (or `text/plain`), or JSON (`{"uri-list": [{"uri":
...}]}`, `{"uri": ...}`) when the caller accepts `application/json`; a property
as text, or `{"PROP": ...}`. Errors are `{"message", "code"}` in JSON, else the
message as text, with IM's statuses: a template problem is 400 (IM has no 422).
The app's own error handlers answer the v1 API's shape, so every IM route is an
`IMRoute`, which turns what operations raise into IM's answer.

In: TOSCA bodies (RADL is IM's other language, which dodas does not read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from dodas.errors import DodasError, TemplateError
from dodas.server import operations as ops
from dodas.server.access import Refused

log = logging.getLogger(__name__)
TOSCA_TYPES = {"text/yaml", "text/x-yaml", "application/yaml", "application/x-yaml"}


class IMRoute(APIRoute):
    """A route answering errors IM's way: what operations raise (Refused,
    DodasError) and what FastAPI raises for a bad request become `{message,
    code}` or text, with IM's status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answering(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as exc:
                return error(request, 400 if exc.status == 422 else exc.status, exc.message)
            except TemplateError as exc:
                return error(request, 400, exc.message)
            except DodasError as exc:
                status = ops.status_of(exc)
                return error(request, 400 if status == 422 else status, exc.message)
            except RequestValidationError as exc:  # named by place only: never echo what was sent
                where = "; ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
                return error(request, 400, f"the request is not valid ({where})")
            except Exception:  # a fault of the server's: logged here, answered in IM's shape without details
                log.exception("IM API: %s %s failed", request.method, request.url.path)
                return error(request, 500, "the server failed on this request (its log says why)")
        return answering


def accepts_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "").lower()


def error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """IM's error: `{"message", "code"}` when JSON is accepted, else the message as text."""
    message = ops.public(message)  # never the server's own files
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dodas"'
    if accepts_json(request):
        return JSONResponse({"message": message, "code": status}, status_code=status, headers=headers)
    return PlainTextResponse(message, status_code=status, headers=headers)


def uris(request: Request, items: list[str], headers: dict[str, str] | None = None) -> Response:
    if accepts_json(request):
        return JSONResponse({"uri-list": [{"uri": u} for u in items]}, headers=headers)
    return PlainTextResponse("\n".join(items), media_type=text_kind(request), headers=headers)


def text_kind(request: Request) -> str:
    accept = request.headers.get("accept", "").lower()
    return "text/plain" if "text/plain" in accept and "text/uri-list" not in accept else "text/uri-list"


def prop(request: Request, name: str, value: Any, media_type: str = "text/plain") -> Response:
    if accepts_json(request) or not isinstance(value, str):
        return JSONResponse({name: value})
    return PlainTextResponse(value, media_type=media_type)


def body_kind(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def tosca_body(request: Request, body: bytes) -> str:
    """The TOSCA template sent; 415 naming what was sent instead."""
    kind = body_kind(request)
    if kind == "text/plain":
        raise Refused(415, "the body is RADL (text/plain), which this server does not read: "
                           "send a TOSCA template as text/yaml")
    if not kind:
        raise Refused(415, "the body has no Content-Type, so it is RADL as IM reads it, which this server does not "
                           "read: send a TOSCA template as text/yaml")
    if kind == "application/json":
        raise Refused(415, "the body is RADL-JSON (application/json), which this server does not read: "
                           "send a TOSCA template as text/yaml")
    if kind not in TOSCA_TYPES:
        raise Refused(415, f"a body of type {kind[:80] or '(none)'} is not supported: send a TOSCA template as "
                           "text/yaml, text/x-yaml or application/yaml")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the template is not UTF-8 text") from None


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
