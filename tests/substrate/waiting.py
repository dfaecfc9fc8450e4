"""Bounded polling for tests: `wait_for` instead of bare sleeps.

Why: a test that sleeps a fixed time is either slow or flaky. `wait_for` polls a predicate
until it returns something truthy and fails with a message naming what it waited for, the last
value it saw and the last tolerated error, so a timeout explains itself in the test report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A `wait_for` ran out of time. An AssertionError so pytest reports it as a test failure."""


def wait_for(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float,
    interval: float = 0.2,
    description: str = "the condition",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` until it returns a truthy value, and return that value.

    `timeout` bounds the whole wait (seconds); `interval` is the pause between calls. Exceptions
    whose types are in `ignore` count as "not yet" (e.g. a NotFound while an object is being
    created); any other exception propagates at once. On timeout raises `WaitTimeoutError` whose
    message contains `description`, the last value and the last ignored error.
    """
    deadline = time.monotonic() + timeout
    last_value: object = None
    value: T | Literal[False] | None
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last_error = exc
        else:
            if value:
                return value
            last_value = value
            last_error = None
        if time.monotonic() >= deadline:
            detail = f"last value: {last_value!r}"
            if last_error is not None:
                detail += f"; last error: {type(last_error).__name__}: {last_error}"
            raise WaitTimeoutError(
                f"timed out after {timeout:g} s waiting for {description} ({detail})"
            )
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
