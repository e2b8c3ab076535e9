"""What a server's answers may say of the server itself: the settings, never
its files.

Messages written for the command line name the file to change ("limits.max_instances
in ~/.config/dodas/config.yaml"), and planning names the file it read (a server
plans a private copy of each request under its data directory). On a server
those are the server's own paths: its home, its layout, its configuration's
place, which a user has no business knowing. Every answer of the server (its
errors on every face, plan JSON, a work item's recorded error) goes through
`public`: a limit is named as a setting of the server's configuration, the
provider configuration by its name, a request's copy by the sender's file name,
dodas's own files by their place in the package, and anything else under the
server's directories as the server's files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dodas.errors import Diagnostic, DodasError, TemplateError

_PATH_END = r"[^\s'\"),;:\]]*"


def public(text: str, shown: str = "template.yaml", extra: Iterable[Path | str] = ()) -> str:
    """`text` without the server's paths (see the module's docstring); `shown`
    is the sender's file name, `extra` more directories of the server (its
    catalogue)."""
    if not text:
        return text
    import dodas
    from dodas import paths, settings
    from dodas.providers import config as providers

    out = re.sub(rf"(limits\.\w+) in {re.escape(str(settings.config_path()))}(, or DODAS_\w+)?",
                 r"\1 in the server's configuration", text)
    out = out.replace(str(settings.config_path()), "the server's configuration")
    out = out.replace(str(providers.config_file()), "the server's provider configuration")
    copies = re.escape(str(paths.data_dir() / "server")) + r"/(?:requests|work)/[^/\s]+/template\.yaml"
    out = re.sub(copies, shown.replace("\\", "\\\\"), out)
    package = str(Path(dodas.__file__).resolve().parent)
    out = re.sub(re.escape(package) + r"(?=/)", "dodas", out)
    roots = {str(paths.data_dir()), str(paths.config_dir()), str(paths.cache_dir()), str(Path.home()),
             *(str(e) for e in extra if e)}
    for root in sorted((r for r in roots if len(r) > 1), key=len, reverse=True):
        out = re.sub(re.escape(root) + rf"(?![\w.-]){_PATH_END}", "(the server's files)", out)
    return out


def public_error(exc: DodasError, shown: str = "template.yaml", extra: Iterable[Path | str] = ()) -> DodasError:
    """The same error (its class kept: the answer's status depends on it), its
    message and diagnostics made public."""
    if isinstance(exc, TemplateError):
        return TemplateError([public_diagnostic(d, shown, extra) for d in exc.diagnostics])
    message = public(exc.message, shown, extra)
    if message != exc.message:
        exc.message = message
        exc.args = (message,)
    return exc


def public_diagnostic(d: Diagnostic, shown: str = "template.yaml", extra: Iterable[Path | str] = ()) -> Diagnostic:
    return Diagnostic(public(d.file, shown, extra), d.line, d.col, public(d.message, shown, extra))


def public_json(value: Any, shown: str = "template.yaml", extra: Iterable[Path | str] = ()) -> Any:
    """Every string of a JSON value (a plan, a view) made public."""
    if isinstance(value, str):
        return public(value, shown, extra)
    if isinstance(value, dict):
        return {k: public_json(v, shown, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [public_json(v, shown, extra) for v in value]
    return value
