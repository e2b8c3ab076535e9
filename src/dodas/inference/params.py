"""TFaaS's `params.json` (`TFParams`): snake_case keys, and the camelCase variants
TFaaS's own documentation shows (`inputNode`), read as their snake_case keys."""

from __future__ import annotations

import json
import re
from typing import Any

# TFParams' JSON tags in TFaaS's tfaas.go, in its order
KEYS = ("name", "model", "labels", "op", "input_name", "output_name", "img_channels", "options",
        "input_node", "output_node", "description", "timestamp")
CAMEL = {"inputName": "input_name", "outputName": "output_name", "imgChannels": "img_channels",
         "inputNode": "input_node", "outputNode": "output_node"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ParamsError(ValueError):
    """params.json is not usable; the message says why."""


def valid_name(name: str) -> bool:
    """A model name is a directory name in the store: no separators, no dot-dirs."""
    return bool(NAME_RE.match(name)) and name not in (".", "..")


def normalise(raw: Any) -> dict[str, Any]:
    """TFParams with snake_case keys only (camelCase mapped; unknown keys dropped,
    as Go's JSON decoding into TFParams drops them)."""
    if not isinstance(raw, dict):
        raise ParamsError("params.json must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = CAMEL.get(key, key)
        if key in KEYS:
            out[key] = value
    if "options" in out and not (isinstance(out["options"], list)
                                 and all(isinstance(o, str) for o in out["options"])):
        raise ParamsError("params.json: options must be a list of strings (TFaaS's []string)")
    if "img_channels" in out and not isinstance(out["img_channels"], int):
        raise ParamsError("params.json: img_channels must be an integer")
    for key in KEYS:
        if key not in ("img_channels", "options") and key in out and not isinstance(out[key], str):
            raise ParamsError(f"params.json: {key} must be a string")
    return out


def parse(data: bytes) -> dict[str, Any]:
    """params.json's bytes, normalised; a clear error when not JSON."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParamsError(f"params.json is not valid JSON: {exc}") from None
    return normalise(raw)


def image_scale(params: dict[str, Any]) -> float:
    """What /image divides pixel values by: 1 (TFaaS feeds raw 0-255 values), or N
    when the model's `options` (TFaaS's list of strings) hold `scale=N` (`scale=255`
    for a model trained on values in 0-1)."""
    for option in params.get("options") or ():
        if isinstance(option, str) and option.replace(" ", "").startswith("scale="):
            try:
                value = float(option.split("=", 1)[1])
            except ValueError:
                raise ParamsError(f"params.json: option {option!r}: scale must be a number") from None
            if value <= 0:
                raise ParamsError(f"params.json: option {option!r}: scale must be positive")
            return value
    return 1.0
