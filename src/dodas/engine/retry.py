"""Retrying provider calls: transient failures (rate limits, timeouts, a cloud's
hiccup) are retried with exponential backoff and jitter; permanent ones (bad
credentials, unknown image) fail at once, since waiting would not change them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dodas.providers.base import ProviderError

T = TypeVar("T")


async def with_retries(call: Callable[[], Awaitable[T]], *, attempts: int = 4, base: float = 0.5,
                       cap: float = 8.0, on_retry: Callable[[int, Exception, float], None] | None = None) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ProviderError as exc:
            if not exc.transient or attempt == attempts:
                raise
            delay = min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            if on_retry:
                on_retry(attempt, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
