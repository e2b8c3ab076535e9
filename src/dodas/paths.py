"""Where dodas keeps its files, by the XDG base-directory convention.

State (the database, per-deployment work directories) goes to the data directory,
fetched imports to the cache, provider configuration to the config directory.
Each can be moved with its XDG variable; DODAS_HOME moves all three at once,
which is what tests and benchmarks use to stay isolated.
"""

from __future__ import annotations

import os
from pathlib import Path


def _base(xdg_var: str, default: str, sub: str) -> Path:
    home = os.environ.get("DODAS_HOME")
    if home:
        return Path(home) / sub
    root = os.environ.get(xdg_var) or os.path.join(os.path.expanduser("~"), default)
    return Path(root) / "dodas"


def data_dir() -> Path:
    return _base("XDG_DATA_HOME", ".local/share", "data")


def cache_dir() -> Path:
    return _base("XDG_CACHE_HOME", ".cache", "cache")


def config_dir() -> Path:
    return _base("XDG_CONFIG_HOME", ".config", "config")


PACKAGE_DIR = Path(__file__).resolve().parent
TYPE_LIBRARY = PACKAGE_DIR / "tosca" / "library" / "dodas_types.yaml"
PLAYBOOKS_DIR = PACKAGE_DIR / "configure"
