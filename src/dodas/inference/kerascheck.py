"""Checking an uploaded `.keras` file before Keras loads it. The archive is checked
by bundle.check_zip (sizes, ratio, names, CRCs, as a stream); its config.json names
every object Keras will build, and each must be one of Keras's own classes: no
custom objects (a registered name, a module outside Keras), no layer that runs
Python (Lambda) and none that reads a path on the server (TFSMLayer loads a
SavedModel from one; the lookup and vectorisation layers read a vocabulary file
when given a path). Keras's safe mode stays on when loading, as a second guard."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from .bundle import BundleError, check_zip

#: config.json and metadata.json describe a model's structure: a few KB, a few MB for a huge model
MAX_CONFIG = 8 * 1024 * 1024
#: Keras classes that run Python or reach the server's files
REFUSED_CLASSES = {"Lambda": "a Lambda layer (arbitrary Python code)",
                   "TFSMLayer": "a TFSMLayer (it loads a SavedModel from a path on the server)",
                   "TorchModuleWrapper": "a TorchModuleWrapper (a pickled PyTorch module)",
                   "JaxLayer": "a JaxLayer (arbitrary Python functions)",
                   "FlaxLayer": "a FlaxLayer (arbitrary Python functions)"}
#: the markers Keras's serialisation writes for plain values (a tensor of the graph, an array,
#: bytes, a slice); not "__lambda__" (Python code) nor "__typespec__" (a class looked up by name)
STRUCTURAL = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__", "__tuple__"}
#: config keys whose string value is a path the layer would read
PATH_KEYS = {"vocabulary", "filepath", "idf_weights"}


class KerasRefused(ValueError):
    """The .keras file is refused; the message says what it contains."""


def _check_object(obj: dict[str, Any], where: str) -> None:
    name = obj.get("class_name")
    if not isinstance(name, str):
        raise KerasRefused(f"config.json: {where} has a class_name that is not a string")
    if name in REFUSED_CLASSES:
        raise KerasRefused(f"the model has {REFUSED_CLASSES[name]} ({where}); it is refused")
    if name == "__lambda__" or name.startswith("__") and name not in STRUCTURAL:
        raise KerasRefused(f"the model holds serialised Python code ({name!r} at {where}); it is refused")
    module = obj.get("module")
    registered = obj.get("registered_name")
    if module is not None and not (module == "keras" or str(module).startswith("keras.")):
        raise KerasRefused(f"the model uses {name!r} from module {module!r} ({where}): only Keras's own classes "
                           "are accepted (no custom objects)")
    if registered not in (None, name) and not (isinstance(registered, str) and registered.startswith("keras")):
        raise KerasRefused(f"the model uses the custom object {registered!r} ({where}): only Keras's own classes "
                           "are accepted")
    config = obj.get("config")
    if isinstance(config, dict):
        for key in PATH_KEYS & set(config):
            if isinstance(config[key], str) and config[key]:
                raise KerasRefused(f"{name} at {where} names a file ({key}); layers that read the server's files "
                                   "are refused")


def _walk(value: Any, where: str) -> None:
    if isinstance(value, dict):
        if "class_name" in value:
            _check_object(value, where)
        for key, item in value.items():
            _walk(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]")


def check_keras(path: Path, max_bytes: int) -> None:
    """Refuse (KerasRefused, or BundleError for the archive) a .keras file Keras should not load."""
    if not zipfile.is_zipfile(path):
        raise KerasRefused(f"{path.name} is not a Keras 3 .keras archive (not a zip file)")
    check_zip(path, max_bytes)
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("config.json")
            if info.file_size > MAX_CONFIG:
                raise KerasRefused(f"{path.name}: config.json is larger than {MAX_CONFIG} bytes")
            config = json.loads(zf.read(info))
    except KeyError:
        raise KerasRefused(f"{path.name} is not a Keras 3 .keras archive: it has no config.json") from None
    except (zipfile.BadZipFile, ValueError, RecursionError) as exc:
        if isinstance(exc, KerasRefused):
            raise
        raise KerasRefused(f"{path.name} is not a Keras 3 .keras archive: {type(exc).__name__}") from None
    try:
        _walk(config, "config")
    except RecursionError:
        raise KerasRefused(f"{path.name}: config.json is nested too deeply") from None


__all__ = ["BundleError", "KerasRefused", "check_keras"]
