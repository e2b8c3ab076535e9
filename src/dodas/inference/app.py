"""The HTTP API, TFaaS's routes and formats (vkuznet/TFaaS server.go): /models,
/upload (multipart form or tarball bundle), /json and /predict/json, /image,
/delete, /params/{model}, /status. Errors are JSON `{"error": ..., "code": ...}`,
never a traceback. Who may upload, delete and read is access.py's; where the
upload's files come from, uploads.py's; images, images.py's."""

from __future__ import annotations

import errno
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from . import bundle, images, loaders, params as tfparams, proto as tfproto, uploads
from .access import Access
from .store import NotFound, Store

log = logging.getLogger("dodas.inference")


@dataclass
class Config:
    models: Path
    token: str
    open_reads: bool = False
    cache_limit: int = 10
    max_upload_bytes: int = 256 * 1024 * 1024
    max_unpacked_bytes: int = 1024 * 1024 * 1024
    #: subject DNs (slash form) whose verified client certificates may upload and delete
    writer_dns: tuple[str, ...] = ()


class TooLarge(Exception):
    """The request body passed the upload limit."""


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=code)


class BodyLimit:
    """ASGI middleware: a body longer than the limit ends the request with 413,
    counted as it arrives (a missing or false Content-Length does not help).
    It also counts requests by method for /status (plain ASGI: Starlette's
    BaseHTTPMiddleware cost about 0.5 ms per request)."""

    def __init__(self, app: Any, limit: int, counters: dict[str, int] | None = None) -> None:
        self.app, self.limit, self.counters = app, limit, counters

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.counters is not None and scope.get("method") in self.counters:
            self.counters[scope["method"]] += 1
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await _error(413, f"the request body is larger than the limit of {self.limit} bytes")(
                    scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge()
            return message

        await self.app(scope, counted, send)


#: what an upload whose files collide (with each other, params.json or labels.txt) raises
CONFLICTS = {errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY}

INLINE_SECONDS = 0.001  # a model answering a few rows faster than this runs on the event loop
INLINE_ROWS = 16


async def run_model(model: loaders.LoadedModel, batch: np.ndarray) -> np.ndarray:
    """model.predict(batch): on the event loop when the model's recent calls on small batches took under
    INLINE_SECONDS (a hop to the thread pool and back costs about as much as a small dense model's whole
    call), else in the thread pool. The estimate (an average of the last small calls) lives on the model
    object, so a replaced model starts over in the thread pool."""
    small = batch.shape[0] <= INLINE_ROWS
    estimate = getattr(model, "call_seconds", None)

    def timed() -> np.ndarray:
        t0 = time.perf_counter()
        out = model.predict(batch)
        if small:
            took = time.perf_counter() - t0
            model.call_seconds = took if estimate is None else 0.8 * estimate + 0.2 * took  # type: ignore
        return out

    if small and estimate is not None and estimate < INLINE_SECONDS:
        return timed()
    return await run_in_threadpool(timed)


def create_app(cfg: Config) -> FastAPI:
    """The FastAPI application serving the models under cfg.models."""
    store = Store(cfg.models, cfg.cache_limit, cfg.max_unpacked_bytes)
    started = time.time()
    counters = {"GET": 0, "POST": 0, "DELETE": 0}
    app = FastAPI(title="dodas inference (TFaaS-compatible)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    access = Access(cfg.token, cfg.open_reads, cfg.writer_dns)
    process = psutil.Process()  # one object: cpu_percent measures since its previous call
    process.cpu_percent(interval=None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "bad request: " + "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return _error(413, f"the request body is larger than the limit of {cfg.max_upload_bytes} bytes")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    def model_params(name: str) -> dict[str, Any]:
        try:
            return store.params(name)
        except NotFound:
            raise HTTPException(404, f"no model named {name!r}") from None

    async def loaded(name: str) -> loaders.LoadedModel:
        model = store.cached(name)  # the common case: no thread, no params.json read
        if model is not None:
            return model
        model_params(name)
        try:
            return await run_in_threadpool(store.get, name)
        except NotFound:
            raise HTTPException(404, f"no model named {name!r}") from None
        except loaders.LoadError as exc:
            raise HTTPException(409, f"model {name!r} is stored but cannot be served (upload it again): {exc}") \
                from None  # e.g. stored by an older version, and refused by today's checks

    @app.get("/models")
    async def models(request: Request) -> list[dict[str, Any]]:
        access.need_read(request)
        out = []
        for name in store.names():
            try:
                out.append(store.params(name))
            except NotFound:  # deleted while listing
                pass
        return out

    @app.get("/params/{model}")
    async def get_params(model: str, request: Request) -> dict[str, Any]:
        access.need_read(request)
        return model_params(model)

    default: dict[str, str] = {}  # TFaaS's "current" model: the one asked for when a request names none

    def default_model() -> str | None:
        """The model set by POST /params or uploaded last; after a restart, the newest one stored."""
        return default.get("model") or store.newest()

    @app.post("/params")
    async def set_params(request: Request) -> dict[str, Any]:
        """TFaaS's POST /params: a params.json naming a served model makes it the default one."""
        access.need_write(request)
        try:
            given = tfparams.parse(await request.body())
        except tfparams.ParamsError as exc:
            raise HTTPException(400, str(exc)) from None
        name = given.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPException(400, "params.json needs \"name\": the served model to use by default")
        found = model_params(name)
        default["model"] = name
        return found

    @app.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        access.need_read(request)
        mem = process.memory_info()
        return {"uptime": time.time() - started, "threads": process.num_threads(), "rss": mem.rss, "vms": mem.vms,
                "load": list(psutil.getloadavg()), "cpu_percent": process.cpu_percent(interval=None),
                "requests": dict(counters), "models": len(store.names()), "cache": store.stats(),
                "tensorflow_loaded": "tensorflow" in sys.modules}

    async def predict_values(name: Any, values: Any, keys: Any) -> tuple[loaders.LoadedModel, list[list[float]], bool]:
        """The model's outputs for one row of values (or a list of rows): (model, rows, one row given)."""
        if not isinstance(name, str):
            raise HTTPException(400, "the body needs \"model\" (the model's name; none is served yet to "
                                     "default to) and \"values\"")
        try:
            x = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise HTTPException(400, "\"values\" must be a list of numbers (or a list of such lists)") from None
        if x.ndim not in (1, 2) or x.size == 0:
            raise HTTPException(400, "\"values\" must be a non-empty list of numbers (or a list of such lists)")
        if x.ndim == 1 and isinstance(keys, list) and keys and len(keys) != x.shape[0]:
            raise HTTPException(400, f"{len(keys)} keys but {x.shape[0]} values")
        model = await loaded(name)
        batch = x[None, :] if x.ndim == 1 else x
        want = model.input_shape[1:] if model.input_shape else ()
        if len(want) == 1 and want[0] is not None and batch.shape[1] != want[0]:
            raise HTTPException(400, f"model {model.name!r} takes {want[0]} values, got {batch.shape[1]}")
        try:
            out = await run_model(model, batch)
        except Exception as exc:  # noqa: BLE001 - a model's own errors: a 400 naming their kind, not a 500
            raise HTTPException(400, f"the model cannot predict on these values: {type(exc).__name__}") from None
        out = out.reshape(out.shape[0], -1)
        return model, [[float(v) for v in r] for r in out], x.ndim == 1

    async def predict_json(request: Request) -> Response:
        access.need_read(request)
        try:
            row = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not JSON; send {\"keys\": [...], \"values\": [...], "
                                     "\"model\": \"name\"}") from None
        if not isinstance(row, dict):
            raise HTTPException(400, "the body needs \"model\" (the model's name) and \"values\"")
        model, rows, one = await predict_values(row.get("model") or default_model(), row.get("values"),
                                                row.get("keys"))
        if request.query_params.get("labels") in ("1", "true", "yes") and model.labels:
            rows = [[{"label": lb, "probability": p} for lb, p in zip(model.labels, r)] for r in rows]
        return JSONResponse(rows[0] if one else rows)  # plain JSON: no jsonable_encoder walk of the floats

    async def predict_proto(request: Request) -> Response:
        """TFaaS's protobuf route: a Row in, Predictions out (labels, or the outputs' indices)."""
        access.need_read(request)
        try:
            keys, values, name = tfproto.parse_row(await request.body())
        except tfproto.ProtoError as exc:
            raise HTTPException(400, str(exc)) from None
        model, rows, _ = await predict_values(name or default_model(), values, keys)
        labels = model.labels or [str(i) for i in range(len(rows[0]))]
        return Response(tfproto.predictions(list(zip(labels, rows[0]))), media_type="application/octet-stream")

    app.post("/proto")(predict_proto)
    app.post("/predict/proto")(predict_proto)

    app.post("/json")(predict_json)
    app.post("/predict/json")(predict_json)

    async def predict_image(request: Request) -> dict[str, Any]:
        access.need_read(request)
        form = await request.form(max_files=1, max_fields=4)
        image, name = form.get("image"), form.get("model") or default_model()
        if image is None or isinstance(image, str) or not isinstance(name, str):
            raise HTTPException(400, "send a multipart form with image=@FILE and model=NAME")
        model = await loaded(name)
        data = await image.read()
        try:
            out = await run_in_threadpool(images.predict, model, data)
        except Exception as exc:  # noqa: BLE001 - a model's own errors: a 400 naming them, not a 500
            raise HTTPException(400, f"cannot predict on this image: {type(exc).__name__}: {exc}"[:300]) from None
        return {"filename": image.filename, "labels": images.top(out, model.labels)}

    app.post("/image")(predict_image)
    app.post("/predict/image")(predict_image)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        access.need_write(request)
        ctype = request.headers.get("content-type", "")
        staging = store.staging_dir()
        try:
            shape = uploads.from_form if ctype.startswith("multipart/form-data") else uploads.from_bundle
            name, params, root = await shape(request, staging, cfg.max_unpacked_bytes)
            params.setdefault("timestamp", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
            model = await run_in_threadpool(store.install, name, root, params)
            default["model"] = name  # TFaaS: the last uploaded model answers requests naming none
            return {"model": name, "format": model.kind, "labels": model.labels}
        except (bundle.BundleError, tfparams.ParamsError, loaders.LoadError) as exc:
            raise HTTPException(400, f"upload refused: {exc}") from None
        except OSError as exc:
            if exc.errno not in CONFLICTS:
                raise
            raise HTTPException(400, "upload refused: the upload's files conflict (a file where a directory "
                                     f"is expected, or the reverse): {type(exc).__name__}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def delete(name: str) -> dict[str, Any]:
        """TFaaS answers 200 whether or not the model was there; so does this (saying which)."""
        try:
            await run_in_threadpool(store.delete, name)
        except NotFound:
            return {"model": name, "deleted": False}
        if default.get("model") == name:
            default.pop("model")
        return {"model": name, "deleted": True}

    @app.delete("/delete/{model}")
    async def delete_path(model: str, request: Request) -> dict[str, Any]:
        access.need_write(request)
        return await delete(model)

    @app.delete("/delete")
    async def delete_form(request: Request) -> dict[str, Any]:
        access.need_write(request)
        form = await request.form(max_files=0, max_fields=4)
        name = form.get("model")
        if not isinstance(name, str) or not name:
            raise HTTPException(400, "the form does not provide model")
        return await delete(name)

    return BodyLimit(app, cfg.max_upload_bytes, counters)  # type: ignore[return-value]
