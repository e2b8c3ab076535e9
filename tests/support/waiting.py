"""Waiting on a condition, never for a fixed time: a test polls for what it waits for
(a service up, an event logged, a token past half its life), so a busy machine makes
it slower, not wrong. The timeout only tells "never" from "slow"; the per-test hang
guard (pytest-timeout) is above it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], what: str = "the condition", timeout: float = 120.0,
               every: float = 0.1) -> T:
    """`predicate()` once it is true (its value), polled every `every` seconds; an
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def wait_past(instant: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Until `clock()` has passed `instant`: for a test whose condition is time itself
    (an interval, an expiry), the wait derived from that instant, not a guess."""
    wait_until(lambda: clock() > instant, f"the clock to pass {instant:.3f}",
               timeout=max(0.0, instant - clock()) + 60.0, every=0.02)
