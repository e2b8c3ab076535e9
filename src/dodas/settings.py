"""Operator settings: `config.yaml` in dodas's config directory.

Templates and their inputs come from users who may be careless or hostile; the
limits here are what keeps one of them from exhausting the machine dodas runs on
(a count of a billion instances, a YAML "billion laughs", a file of gigabytes).
They are the operator's to choose, so they live in the operator's configuration,
not in the template:

    limits:
      max_instances_per_node: 1000     # instances of one node (a compute's count)
      max_instances: 2500              # instances of a whole deployment
      max_file_bytes: 4194304          # a template, inputs file or imported file
      max_yaml_nodes: 500000           # values in one YAML document, aliases expanded
      max_yaml_depth: 100              # nesting of lists and mappings

Each can also be set by an environment variable (`DODAS_MAX_INSTANCES_PER_NODE`,
`DODAS_MAX_INSTANCES`, `DODAS_MAX_FILE_BYTES`, `DODAS_MAX_YAML_NODES`,
`DODAS_MAX_YAML_DEPTH`), which wins over the file.

Remote imports dodas does not bundle can be pointed at a local copy or a mirror
(for machines without the network, or with `--offline`): `import_mirrors` maps a
URL prefix to a local folder or another URL prefix, the longest prefix winning;
`DODAS_IMPORT_MIRRORS` ("PREFIX=TARGET", several separated by spaces) wins over it:

    import_mirrors:
      https://raw.githubusercontent.com/example/types/: /srv/tosca-mirror/example-types/ The defaults leave room for the
largest deployments the benchmarks plan (1000 instances of one node; 1000 hosts
each with a worker) while keeping what a plan holds in memory well under 1 GiB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from dodas import paths
from dodas.errors import Diagnostic, DodasError, TemplateError

CONFIG_FILE = "config.yaml"
MIRRORS_ENV = "DODAS_IMPORT_MIRRORS"


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what a template may ask dodas to hold in memory."""

    max_instances_per_node: int = 1000
    max_instances: int = 2500
    max_file_bytes: int = 4 * 1024 * 1024
    max_yaml_nodes: int = 500_000
    #: well below Python's recursion limit, which code walking a value may meet
    #: (tosca-parser, pickle); real templates nest fewer than 20 levels
    max_yaml_depth: int = 100

    @staticmethod
    def env_var(name: str) -> str:
        return f"DODAS_{name.upper()}"

    @staticmethod
    def where(name: str) -> str:
        """How to change a limit, for messages that report hitting it."""
        return f"limits.{name} in {config_path()}, or {Limits.env_var(name)}"


#: limits that bootstrap reading the configuration itself (it must not be the
#: thing that exhausts memory)
DEFAULT_LIMITS = Limits()
_NAMES = tuple(f.name for f in fields(Limits))
_cache: dict[tuple, Limits] = {}


def config_path() -> Path:
    return paths.config_dir() / CONFIG_FILE


def limits() -> Limits:
    """The limits in force: defaults, then config.yaml's `limits:`, then the
    environment. Re-read when the file or the environment changes (cheap: a stat),
    so that a test or a long-lived process sees what is configured now."""
    path = config_path()
    try:
        st = path.stat()
        stamp: tuple = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = ()
    key = (str(path), stamp, tuple(os.environ.get(Limits.env_var(n)) for n in _NAMES))
    found = _cache.get(key)
    if found is None:
        found = _read(path, bool(stamp))
        _cache.clear()
        _cache[key] = found
    return found


def _read(path: Path, exists: bool) -> Limits:
    values: dict[str, int] = {}
    if exists:
        values.update(_from_file(path))
    for name in _NAMES:
        raw = os.environ.get(Limits.env_var(name))
        if raw is None or raw.strip() == "":
            continue
        try:
            n = int(raw.strip().replace("_", ""))
        except ValueError:
            n = 0
        if n < 1:
            raise DodasError(f"environment variable {Limits.env_var(name)} must be a whole number >= 1")
        values[name] = n
    return Limits(**values)


def _from_file(path: Path) -> dict[str, int]:
    """`limits:` of config.yaml; every problem located in the file."""
    from dodas.yamlsource import read_yaml  # beneath settings: it takes the limits it is given

    data, smap = read_yaml(path, "configuration file", limits=DEFAULT_LIMITS)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TemplateError([smap.diag((), "the configuration must be a YAML mapping")])
    section = data.get("limits")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise TemplateError([smap.diag(("limits",), "limits must be a mapping of limit names to numbers")])
    out: dict[str, int] = {}
    diags: list[Diagnostic] = []
    for key, value in section.items():
        if key not in _NAMES:
            diags.append(smap.diag(("limits", str(key)), f'unknown limit "{key}"; the limits are: '
                                   + ", ".join(_NAMES), key=True))
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            diags.append(smap.diag(("limits", key), f"limits.{key} must be a whole number >= 1"))
        else:
            out[key] = value
    if diags:
        raise TemplateError(diags)
    return out


def import_mirrors() -> dict[str, str]:
    """URL prefix -> local folder or URL prefix, for remote imports (see the top)."""
    raw = os.environ.get(MIRRORS_ENV, "").strip()
    if raw:
        out: dict[str, str] = {}
        for item in raw.split():
            prefix, sep, target = item.partition("=")
            if not (sep and prefix and target):
                raise DodasError(f'{MIRRORS_ENV}: "{item}" is not PREFIX=TARGET')
            out[prefix] = target
        return out
    path = config_path()
    if not path.is_file():
        return {}
    from dodas.yamlsource import read_yaml

    data, smap = read_yaml(path, "configuration file", limits=DEFAULT_LIMITS)
    section = data.get("import_mirrors") if isinstance(data, dict) else None
    if section is None:
        return {}
    if not (isinstance(section, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in section.items())):
        raise TemplateError([smap.diag(("import_mirrors",), "import_mirrors must map URL prefixes to a local "
                                                            "folder or a URL prefix")])
    return dict(section)


def mirrors_where() -> str:
    """How to point dodas at a local copy or a mirror, for messages."""
    return f"import_mirrors in {config_path()}, or {MIRRORS_ENV}=PREFIX=TARGET"
