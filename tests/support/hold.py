"""Holding a simulated provider's creations for as long as a test looks
(its `create_hold` option, docs/guide/providers.md): a browser test that must
see a creation half-way, or what waits behind it, holds it instead of
counting on a latency outlasting the test's own steps, which a busy machine
can make longer and a quiet one shorter. Give the provider
`"create_hold": str(hold_file)` and look inside `with held(hold_file):`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def hold_file(tmp_path_factory) -> Path:
    """The module's hold file (absent: nothing held), for its server's providers."""
    return tmp_path_factory.mktemp("hold") / "held"


@contextmanager
def held(hold_file: Path) -> Iterator[None]:
    """Creations on the providers holding on `hold_file` wait within the block and
    go on when it ends, however it ends (a failure leaves no later test waiting)."""
    hold_file.touch()
    try:
        yield
    finally:
        hold_file.unlink(missing_ok=True)
