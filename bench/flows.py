"""Workflows the cluster benchmarks run (importable from the repository root)."""

from __future__ import annotations

import time

import stepstone
from tests.workflows import effects


@stepstone.step
def quick(i: int) -> int:
    return i


@stepstone.step
def long_on_first_attempt(seconds: float) -> str:
    """Marks its start in Postgres (with the database's clock), then runs long on the first
    attempt only, so a benchmark can delete its pod mid-step and time the next attempt."""
    effects.record("long_started")
    info = stepstone.current_run()
    if info is not None and info.attempt == 1:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            stepstone.heartbeat()
            time.sleep(0.05)
    return "done"


@stepstone.workflow
def recoverable(seconds: float = 120.0) -> str:
    quick(1)
    return long_on_first_attempt(seconds)


@stepstone.workflow
def short(steps: int = 3) -> int:
    return sum(quick(i) for i in range(steps))
