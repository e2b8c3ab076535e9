"""Checking an uploaded `.keras` file before Keras loads it. The archive is checked
by bundle.check_zip (sizes, ratio, names, CRCs, as a stream); its config.json names
every object Keras will build, and each must be one of Keras's own classes: no
custom objects (a registered name, a module outside Keras), no layer that runs
Python (Lambda) and none that reads a path on the server (TFSMLayer loads a
SavedModel from one; the lookup and vectorisation layers read a vocabulary file
when given a path). The weights file (HDF5) may hold no links to other files, no
datasets stored in other files and no virtual datasets: each would make Keras read
a file of the server's into the weights. Keras's safe mode stays on when loading,
as a second guard."""

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
#: groups and datasets walked in a weights file at most (a model has a few per layer)
MAX_H5_OBJECTS = 100_000


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
    _check_weights(path)


def _check_weights(path: Path) -> None:
    """Refuse a weights file (model.weights.h5 in the archive) that reaches other files."""
    import h5py  # Keras's own dependency; lazily

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".h5"):
                continue
            try:
                with zf.open(info) as raw, h5py.File(raw, "r") as h5:
                    _check_group(h5, f"{path.name}:{info.filename}", set(), [0])
            except KerasRefused:
                raise
            except Exception as exc:  # noqa: BLE001 - h5py's errors for a broken file: the upload is refused
                raise KerasRefused(f"{path.name}: {info.filename} is not a readable HDF5 file: "
                                   f"{type(exc).__name__}") from None


def _check_group(group: Any, where: str, seen: set[Any], count: list[int]) -> None:
    import h5py

    for key in group:
        count[0] += 1
        if count[0] > MAX_H5_OBJECTS:
            raise KerasRefused(f"{where} holds more than {MAX_H5_OBJECTS} objects")
        link = group.get(key, getlink=True)
        name = f"{group.name.rstrip('/')}/{key}"
        if isinstance(link, h5py.ExternalLink):
            raise KerasRefused(f"{where}: {name} is a link to another file; weights that read other files "
                               "are refused")
        if isinstance(link, h5py.SoftLink):
            continue  # a name for an object the walk reaches by its own path
        obj = group[key]
        if isinstance(obj, h5py.Dataset):
            if obj.external or obj.is_virtual:
                raise KerasRefused(f"{where}: dataset {name} is stored in other files; weights that read "
                                   "other files are refused")
        elif isinstance(obj, h5py.Group) and obj.id not in seen:  # hard links can make cycles
            seen.add(obj.id)
            _check_group(obj, where, seen, count)


__all__ = ["BundleError", "KerasRefused", "check_keras"]
