"""`dodas server`: the FastAPI application, its middleware and its workers.

The application is built from a ServerConfig by `create_app`; routes are in
routes.py, token validation in auth.py, who-may-do-what in services/tenancy.py. Errors
that reach a caller are JSON of one shape, `{"error": {"message": ...}}` (and
`diagnostics` for a template's located problems), with the status that fits:
404 for what the caller may not see, 409 for a deployment that is busy, 413 for
a body over the limit, 422 for an invalid template or inputs.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from dodas import __version__
from dodas.errors import DodasError, TemplateError
from dodas.server import access, metrics
from dodas.server.access import Caller, Refused
from dodas.server.config import ServerConfig


def create_app(cfg: ServerConfig, *, start_workers: bool = True) -> FastAPI:
    cfg.check_bind()
    validator = None
    if cfg.authenticated:
        from dodas.server.auth import TokenValidator
        validator = TokenValidator(cfg.issuers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # FastAPI's lifespan protocol
        pool = None
        if start_workers and cfg.workers > 0:
            from dodas.server.workers import Pool
            pool = Pool(cfg.workers, cfg.lease_seconds)
            pool.start()
        yield
        if pool is not None:  # each worker finishes what it holds within a lease, or hands it back
            await asyncio.to_thread(pool.shutdown, cfg.lease_seconds)

    app = FastAPI(title="dodas", version=__version__, lifespan=lifespan,
                  description="Deployments of analysis platforms from TOSCA templates, as a shared service.")
    app.state.config = cfg

    def identify(token: str) -> Caller:
        """The caller an access token names, as every face checks it (401 when it is not good)."""
        if validator is None:
            return access.LOCAL
        from dodas.server.auth import AuthError
        try:
            identity = validator.validate(token)
        except AuthError as exc:
            raise Refused(exc.status, exc.message) from None
        return Caller.of(identity, cfg)

    def caller(request: Request) -> Caller:
        if validator is None:
            return access.LOCAL
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "an access token is needed: Authorization: Bearer TOKEN")
        return identify(token.strip())
    app.state.caller = caller
    app.state.identify = identify
    app.state.validator = validator

    from dodas.server.routes import router
    app.include_router(router)
    from dodas.server.im.routes import router as im_router  # the Infrastructure Manager's API
    app.include_router(im_router)
    from dodas.server import web
    web.install(app)
    _errors(app)
    _middleware(app, cfg)

    @app.get("/health", summary="Whether the server answers and reaches its database")
    def health() -> dict[str, Any]:
        from dodas.server import operations
        return {"status": "ok", "queued": operations.queue_depth()}

    @app.get("/api/v1/auth", summary="How to log in: the trusted issuers and the client id for the device flow")
    def how_to_log_in() -> dict[str, Any]:
        return {"authenticated": cfg.authenticated, "client_id": cfg.cli_client_id,
                "issuers": [i.url for i in cfg.issuers]}

    @app.get("/version", summary="The server's version")
    def version() -> dict[str, str]:
        return {"version": __version__, "api": "v1"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def scrape() -> PlainTextResponse:
        body, content_type = metrics.exposition()
        return PlainTextResponse(body, media_type=content_type)
    return app


def _errors(app: FastAPI) -> None:
    from dodas.server import web

    def answer(request: Request, status: int, message: str, **extra: Any) -> Response:
        from dodas.server import operations
        message = operations.public(message)  # never the server's own files: its settings
        if "diagnostics" in extra:
            extra["diagnostics"] = [{**d, "file": operations.public(d["file"]),
                                     "message": operations.public(d["message"])} for d in extra["diagnostics"]]
        if web.is_page(request):  # the dashboard's pages answer with a page
            details = [operations.public(str(d)) for d in extra.get("diagnostics_objects", [])]
            return web.error_page(request, status, message, details)
        extra.pop("diagnostics_objects", None)
        headers = {"WWW-Authenticate": 'Bearer realm="dodas"'} if status == 401 else None
        return JSONResponse({"error": {"message": message, **extra}}, status_code=status, headers=headers)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return answer(request, exc.status, exc.message)

    @app.exception_handler(DodasError)
    async def dodas_error(request: Request, exc: DodasError) -> Response:
        from dodas.server import operations
        if isinstance(exc, TemplateError):
            return answer(request, 422, exc.message, diagnostics=[d.to_dict() for d in exc.diagnostics],
                          diagnostics_objects=exc.diagnostics)
        return answer(request, operations.status_of(exc), exc.message)


def _middleware(app: FastAPI, cfg: ServerConfig) -> None:
    app.add_middleware(MeasureAndLimit, limit=cfg.max_body_bytes)


class MeasureAndLimit:
    """Request metrics and the body size limit, as plain ASGI: no per-request
    task and stream wrapping as Starlette's `@app.middleware("http")` has. A body
    announced larger than the limit is refused at once; one without a length
    (chunked) is read up to the limit first, then given to the route."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._too_large(scope, receive, sending)
        elif length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            chunks, size, more = [], 0, True
            while more and size <= self.limit:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
            if size > self.limit:
                await self._too_large(scope, receive, sending)
            else:
                await self.app(scope, _replay(b"".join(chunks), receive), sending)
        else:
            await self.app(scope, receive, sending)
        route = scope.get("route")
        metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status[0],
                        time.perf_counter() - started)

    async def _too_large(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = f"the request body is larger than {self.limit} bytes"
        if scope.get("path", "").startswith("/im/"):  # IM's error shape under /im
            from dodas.server.im import answers
            response = answers.error(Request(scope), 413, message)
        else:
            response = JSONResponse({"error": {"message": message}}, status_code=413)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that gives the body already read, then what the client sends next."""
    given = [False]

    async def replaying() -> dict[str, Any]:
        if not given[0]:
            given[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replaying
