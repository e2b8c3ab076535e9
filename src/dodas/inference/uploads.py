"""TFaaS's two upload shapes, staged into a directory before the store installs them:
the multipart form (name, params, model, labels, op; the model part base64 when
Content-Encoding says so, as TFaaS's Python client sends it) and the tarball
bundle (TFaaS's `--bundle`: the body a gzip'd tar of the model directory). A
bundle without params.json (`tar cfz model.tar.gz model`, as TFaaS's README makes
it) is named after its top directory; the store fills the rest from the model."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from . import bundle, loaders, params as tfparams


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not tfparams.valid_name(name):
        raise HTTPException(400, f"invalid model name {name!r} (letters, digits, . _ -)")
    return name


async def from_bundle(request: Request, staging: Path, max_unpacked: int) -> tuple[str, dict[str, Any], Path]:
    """(name, params, model directory) of a tarball bundle."""
    data = await request.body()
    await run_in_threadpool(bundle.unpack, data, staging, max_unpacked)
    root = bundle.model_root(staging)
    if (root / "params.json").is_file():
        params = tfparams.parse((root / "params.json").read_bytes())
    elif root == staging:
        raise HTTPException(400, "upload refused: the bundle has no params.json and no top directory to name "
                                 "the model after (make it as `tar czf model.tar.gz NAME`)")
    else:
        params = {}
    name = _checked_name(params.get("name") or root.name)
    params["name"] = name
    return name, params, root


async def from_form(request: Request, staging: Path, max_unpacked: int) -> tuple[str, dict[str, Any], Path]:
    """(name, params, model directory) of TFaaS's multipart upload form."""
    form = await request.form(max_files=4, max_fields=8)
    name = form.get("name")
    if not isinstance(name, str) or not name:
        raise HTTPException(400, "the form does not provide name")
    _checked_name(name)
    for field in ("params", "model"):
        if form.get(field) is None:
            raise HTTPException(400, f"the form does not provide {field}")
    params = tfparams.parse(await _field_bytes(form["params"]))
    if params.get("name", name) != name:
        raise HTTPException(400, f"params.json's name {params.get('name')!r} is not the form's name {name!r}")
    params["name"] = name
    model_part = form["model"]
    raw = await _field_bytes(model_part)
    encoded = request.headers.get("content-encoding", "").lower() == "base64" or (
        not isinstance(model_part, str) and model_part.headers.get("content-encoding", "").lower() == "base64")
    if encoded:
        try:
            raw = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            raise HTTPException(400, "the model part is not valid base64") from None
    filename = getattr(model_part, "filename", None) or params.get("model") or "model"
    filename = Path(filename).name
    reason = loaders.refused_reason(filename) or loaders.refused_reason(str(params.get("model", "")))
    if reason:
        raise loaders.LoadError(reason)
    if raw[:2] == b"\x1f\x8b" or filename.endswith((".tar", ".tar.gz", ".tgz")):
        await run_in_threadpool(bundle.unpack, raw, staging, max_unpacked)  # a SavedModel directory
        dirs = [p for p in staging.iterdir()]
        if len(dirs) == 1 and dirs[0].is_dir() and not (staging / "saved_model.pb").exists():
            for p in dirs[0].iterdir():
                p.rename(staging / p.name)
            dirs[0].rmdir()
    else:
        target = params.get("model") if params.get("model") and tfparams.valid_name(params["model"]) \
            else filename
        if not tfparams.valid_name(target):
            raise HTTPException(400, f"invalid model file name {target!r}")
        params["model"] = target
        (staging / target).write_bytes(raw)
    labels = form.get("labels")
    if labels is not None:
        (staging / "labels.txt").write_bytes(await _field_bytes(labels))
        params["labels"] = "labels.txt"
    op = form.get("op")
    if isinstance(op, str) and op and "op" not in params:
        params["op"] = op
    return name, params, staging


async def _field_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else await value.read()
