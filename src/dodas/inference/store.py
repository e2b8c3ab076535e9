"""The model store: one directory per model under the models directory (TFaaS's
layout: params.json, labels.txt, the model), and a bounded LRU cache of loaded
models. A replaced model is loaded fully from a staging directory first, then
the directory is renamed into place and the cache entry swapped under one lock:
a prediction sees the old model or the new one, never a half-written one."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from . import loaders
from .params import valid_name


class NotFound(KeyError):
    """No model of that name."""


class Store:
    """Models on disk under `root`, at most `cache_limit` of them loaded in memory; an
    archive inside a model (a .keras zip) may unpack to `max_unpacked` bytes at most."""

    def __init__(self, root: Path, cache_limit: int = 10, max_unpacked: int = 1024 * 1024 * 1024) -> None:
        self.root = root
        self.max_unpacked = max_unpacked
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache_limit = max(1, cache_limit)
        self._cache: OrderedDict[str, loaders.LoadedModel] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()  # the cache and the directory renames
        self._write = threading.Lock()  # one upload/delete at a time
        self._loading: dict[str, threading.Lock] = {}  # per model: one load from disk at a time
        self.hits = self.misses = self.evictions = self.loads = 0
        for stale in self.root.glob(".staging-*"):  # an upload a crash interrupted
            shutil.rmtree(stale, ignore_errors=True)

    def staging_dir(self) -> Path:
        path = self.root / f".staging-{uuid.uuid4().hex}"
        path.mkdir()
        return path

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and valid_name(p.name) and (p / "params.json").is_file())

    def newest(self) -> str | None:
        """The model stored last (its params.json written last): the default after a restart."""
        best: tuple[float, str] | None = None
        for name in self.names():
            try:
                mtime = (self.root / name / "params.json").stat().st_mtime
            except OSError:  # deleted meanwhile
                continue
            if best is None or mtime > best[0]:
                best = (mtime, name)
        return best[1] if best else None

    def params(self, name: str) -> dict[str, Any]:
        path = self.root / name / "params.json"
        if not valid_name(name) or not path.is_file():
            raise NotFound(name)
        return json.loads(path.read_text())

    def _labels(self, model_dir: Path, params: dict[str, Any]) -> list[str]:
        path = model_dir / (params.get("labels") or "labels.txt")
        if not path.is_file() or model_dir.resolve() not in path.resolve().parents:
            return []
        return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]

    def load_dir(self, name: str, model_dir: Path, params: dict[str, Any]) -> loaders.LoadedModel:
        """Load (raising loaders.LoadError with the reason) without touching the store."""
        return loaders.load(name, model_dir, params, self._labels(model_dir, params), self.max_unpacked)

    def cached(self, name: str) -> loaders.LoadedModel | None:
        """The loaded model if it is in the cache (counted as a hit), else None: no disk access, no waiting
        for a load, so the server can call it on its event loop."""
        with self._lock:
            model = self._cache.get(name)
            if model is not None:
                self._cache.move_to_end(name)
                self.hits += 1
            return model

    def get(self, name: str) -> loaders.LoadedModel:
        """The loaded model, from the cache or loaded from disk (evicting the least recently used)."""
        with self._lock:
            if name in self._cache:
                self._cache.move_to_end(name)
                self.hits += 1
                return self._cache[name]
            self.misses += 1
            if not valid_name(name) or not (self.root / name / "params.json").is_file():
                raise NotFound(name)  # (no lock kept for a name that is not a model)
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # the first requests for a model wait for one load instead of each loading it
            with self._lock:
                if name in self._cache:
                    self._cache.move_to_end(name)
                    return self._cache[name]
                generation = self._generation.get(name, 0)
            params = self.params(name)
            model = self.load_dir(name, self.root / name, params)
            with self._lock:
                self.loads += 1
                if self._generation.get(name, 0) == generation and (self.root / name).is_dir():
                    self._put(name, model)  # not if an upload/delete happened meanwhile
        return model

    def _put(self, name: str, model: loaders.LoadedModel) -> None:
        self._cache[name] = model
        self._cache.move_to_end(name)
        while len(self._cache) > self.cache_limit:
            self._cache.popitem(last=False)
            self.evictions += 1

    def install(self, name: str, staged: Path, params: dict[str, Any]) -> loaders.LoadedModel:
        """Load the staged model fully, then switch it in atomically (replacing any old one)."""
        with self._write:
            model = self.load_dir(name, staged, params)
            derived(params, model)
            (staged / "params.json").write_text(json.dumps(params, indent=1))
            target = self.root / name
            trash = self.root / f".staging-old-{uuid.uuid4().hex}"
            with self._lock:
                if target.exists():
                    os.rename(target, trash)
                os.rename(staged, target)
                self._generation[name] = self._generation.get(name, 0) + 1
                self._put(name, model)
            shutil.rmtree(trash, ignore_errors=True)
            return model

    def delete(self, name: str) -> None:
        with self._write:
            target = self.root / name
            if not valid_name(name) or not target.is_dir():
                raise NotFound(name)
            trash = self.root / f".staging-old-{uuid.uuid4().hex}"
            with self._lock:
                os.rename(target, trash)
                self._cache.pop(name, None)
                self._generation[name] = self._generation.get(name, 0) + 1
            shutil.rmtree(trash, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"cache_limit": self.cache_limit, "cached": list(self._cache), "hits": self.hits,
                    "misses": self.misses, "loads": self.loads, "evictions": self.evictions,
                    "time": time.time()}


def derived(params: dict[str, Any], model: loaders.LoadedModel) -> None:
    """Fill what params.json leaves out from the loaded model (all of it for a bundle
    without params.json): the input and output its signature names, its file."""
    if model.input_name:
        params.setdefault("input_name", model.input_name)
    if model.output_name:
        params.setdefault("output_name", model.output_name)
    params.setdefault("model", "saved_model.pb" if model.kind == "savedmodel" else "")
    if not params["model"]:
        params.pop("model")
