"""Which playbook an operation runs, and whether a template may name it.

A template names what runs on this machine, and a playbook can run anything: an
operation may name dodas's bundled playbooks or one in the template's own
directory (after `..` and symbolic links are resolved). Anything else, or a URL,
is refused unless the caller allows external playbooks, which a service running
other people's templates (a server) never does.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from dodas import paths

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@functools.lru_cache(maxsize=256)
def resolve(impl: Any, template_path: str, allow_external: bool) -> tuple[str | None, str | None]:
    """(absolute playbook path, None), or (None, why it is refused).

    A relative name is looked for next to the template first, then among dodas's
    bundled playbooks. Unless `allow_external`, the file found (`..` and symbolic
    links resolved) must lie inside one of those two directories: a template
    names what runs on this machine, and a playbook can run anything."""
    if not isinstance(impl, str) or not impl:
        return None, None
    if "\0" in impl:  # no file has such a name; the operating system refuses to look one up
        return None, "a playbook name cannot contain a NUL character"
    if _URL.match(impl):
        if allow_external:
            return impl, None
        return None, (f'playbook "{_cut(impl)}" is a URL: dodas runs only its own playbooks and those in the '
                      "template's directory (--allow-external-playbooks allows others)")
    template_dir = Path(template_path).resolve().parent
    if Path(impl).is_absolute():
        candidate = Path(impl)
    else:
        local = template_dir / impl
        candidate = local if local.is_file() else paths.PLAYBOOKS_DIR / impl
    if allow_external:
        return str(candidate), None
    real = os.path.realpath(candidate)
    if any(paths.is_within(real, d) for d in (template_dir, paths.PLAYBOOKS_DIR)):
        return real, None
    return None, (f'playbook "{_cut(impl)}" is outside dodas\'s playbooks and the template\'s directory '
                  "(--allow-external-playbooks allows it)")


def _cut(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."
