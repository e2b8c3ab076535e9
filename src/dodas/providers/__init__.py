"""Infrastructure providers behind one small interface (see base.py)."""

from __future__ import annotations

from dodas.errors import DodasError
from dodas.providers.base import Provider

KNOWN = ("local",)


def get_provider(name: str) -> Provider:
    """The configured provider called `name`."""
    if name == "local":
        from dodas.providers.local import LocalProvider
        return LocalProvider()
    raise DodasError(f'unknown provider "{name}"; configured providers: {", ".join(KNOWN)}')
