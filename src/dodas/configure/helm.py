"""Helm in a play: what the install playbook writes and runs for a release (its
values files, in order, and the helm command lines), called by the playbooks
through a filter (filter_plugins/dodas_filters.py).

Releases, values templates, bundled charts and the command lines themselves are
in `dodas.helm`, shared with the model's checks and the kubernetes provider; its
names are re-exported here for the filter and the tests.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from dodas.helm import (BUNDLED, CHARTS, DEFAULT_TIMEOUT, LABEL, VALUES_URL_SCHEMES,  # noqa: F401 - re-exported
                        Kube, Release, ValuesError, bundled_chart, bundled_charts, install_command, list_command,
                        names_used, render_values, repo_add_commands, test_command, uninstall_command)

FETCH_TIMEOUT_S = 15.0


def expand(values: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested maps ({"jupyter.token": x} -> {"jupyter": {"token": x}}),
    as `helm --set` reads them."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        value = expand(value) if isinstance(value, dict) else value
        *parents, last = str(key).split(".")
        cur = out
        for p in parents:
            cur = cur.setdefault(p, {})
        if isinstance(cur.get(last), dict) and isinstance(value, dict):
            cur[last].update(value)
        else:
            cur[last] = value
    return out


def _pruned(values: dict[str, Any]) -> dict[str, Any]:
    """Without unset (None) entries: those keep the chart's own default."""
    out = {}
    for k, v in values.items():
        v = _pruned(v) if isinstance(v, dict) else v
        if v is not None and v != {}:
            out[k] = v
    return out


def fetch_values(url: str, context: dict[str, Any], fetch_allow: list[str] | None = None) -> str:
    """A release's values_url, fetched when the release is installed (by dodas,
    on this machine) and rendered like values_file. On a server (`fetch_allow`
    given) through dodas.outbound: public or allowed addresses only, never a
    file, and no word of what a refused or failing server answered."""
    import urllib.error
    import urllib.request

    if fetch_allow is not None:
        from dodas import outbound
        try:
            text = outbound.fetch(url, fetch_allow).body.decode("utf-8")
        except outbound.FetchError as exc:
            raise ValuesError(f"values_url {url}: {exc}") from None
        except UnicodeDecodeError:
            raise ValuesError(f"values_url {url}: what it answered is not UTF-8 text") from None
        return _rendered(url, text, context)
    if not url.startswith(VALUES_URL_SCHEMES):
        raise ValuesError(f"values_url {url} is not an http(s):// or file:// URL")
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp:  # scheme checked above
            text = resp.read(1_000_000).decode("utf-8")
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ValuesError(f"values_url {url} could not be fetched: {reason}") from None
    return _rendered(url, text, context)


def _rendered(url: str, text: str, context: dict[str, Any]) -> str:
    try:
        return render_values(text, context)
    except ValuesError as exc:
        raise ValuesError(f"values_url {url}: {exc}") from None


def values_yaml(values: dict[str, Any]) -> str:
    values = _pruned(expand(values))
    return yaml.safe_dump(values, sort_keys=True, default_flow_style=False) if values else ""


def plan(props: dict[str, Any], instance_dir: str, kube: dict[str, Any] | None = None,
         deployment_id: str | None = None, chart_values: dict[str, Any] | None = None,
         secret_values: dict[str, Any] | None = None, fetch_allow: list[str] | None = None) -> dict[str, Any]:
    """What the install playbook does for one release: the files to write (chart
    defaults dodas derives from typed properties, values_url's, values_file's,
    then secrets, each overriding the one before) and the commands to run.
    `fetch_allow` is given on a server: dodas then fetches the values and a
    repository's chart itself (configure/helmrepo.py) and Helm adds no repository."""
    r = Release.from_properties(props, kube, deployment_id)
    r.repo_dir = f"{instance_dir}/helm"
    url = props.get("values_url")
    files = [(f"{instance_dir}/dodas-values.yaml", values_yaml(chart_values or {})),
             (f"{instance_dir}/url-values.yaml", fetch_values(str(url), props, fetch_allow) if url else ""),
             (f"{instance_dir}/values.yaml", r.values)]
    files = [(p, c) for p, c in files if c.strip()]
    secret = values_yaml(secret_values or {})
    secret_file = f"{instance_dir}/secret-values.yaml"
    src = bundled_chart(r.chart)
    chart_path = f"{instance_dir}/chart" if src else None
    archive = _fetched_chart(r, fetch_allow) if fetch_allow is not None and not src else None
    if archive is not None:
        chart_path = f"{instance_dir}/{archive[0]}"
        r.repos = []  # nothing for Helm to add: it installs the archive dodas fetched
    return {
        # written by a task whose errors are shown (a values_url that cannot be fetched)
        "files": [{"path": p, "content": c, "mode": "0600"} for p, c in files] +
                 ([{"path": chart_path, "content_base64": base64.b64encode(archive[1]).decode("ascii"),
                    "mode": "0600"}] if archive is not None else []),
        # written by a no_log task, removed after helm ran
        "secret_files": [{"path": secret_file, "content": secret, "mode": "0600"}] if secret.strip() else [],
        "secret_file": secret_file,
        "bundled_chart": f"{src}/" if src else "",
        "chart_path": chart_path or "",
        "repo_commands": repo_add_commands(r),
        "install_command": install_command(r, [p for p, _ in files] + ([secret_file] if secret.strip() else []),
                                           chart_path),
        "uninstall_command": uninstall_command(r),
    }


def _fetched_chart(r: Release, fetch_allow: list[str]) -> tuple[str, bytes] | None:
    """The archive of a repository's chart, fetched by dodas for a server's
    release; None for a chart not from a declared repository (planning refused
    every other form on a server, services/untrusted.py)."""
    from dodas.configure import helmrepo

    prefix, _, name = r.chart.partition("/")
    repo = next((x for x in r.repos if x.get("name") == prefix and isinstance(x.get("url"), str)), None)
    if repo is None or not name or "/" in name:
        return None
    return helmrepo.chart_archive(repo["url"], name, r.version, tuple(fetch_allow))


def commands(props: dict[str, Any], kube: dict[str, Any] | None = None) -> dict[str, Any]:
    """The commands that need no values (uninstall, test): the values are not
    rendered, since what they used may be gone by the time a deployment is destroyed."""
    r = Release.from_properties(props, kube, render=False)
    return {"uninstall_command": uninstall_command(r), "test_command": test_command(r)}
