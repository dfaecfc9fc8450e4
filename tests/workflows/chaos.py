"""The chaos suite's workflow: steps of random but reproducible length, each counting its
executions (with the attempt that ran it) in Postgres, and a result the checker can
recompute."""

from __future__ import annotations

import os
import random
import time

import psycopg

import stepstone
from tests.workflows import effects


def step_seconds(seed: int, step: int, low: float, high: float) -> float:
    return random.Random(seed * 1000 + step).uniform(low, high)


def expected_result(seed: int, steps: int) -> int:
    return sum((seed * 31 + i) % 97 for i in range(steps))


COUNTER_DDL = """
CREATE TABLE IF NOT EXISTS chaos_effects (
    run_id text NOT NULL,
    step integer NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step, attempt, pid)
)
"""


def count_execution() -> None:
    """One row per (run, step, attempt, process) that executed the step's body. Idempotent,
    so a retry of this very insert across a Postgres restart is not counted twice."""
    info = stepstone.current_run()
    assert info is not None and info.step is not None
    with psycopg.connect(os.environ[effects.ENV], autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "INSERT INTO chaos_effects (run_id, step, attempt, pid) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (info.run_id, info.step, info.attempt, os.getpid()),
        )


@stepstone.step(retries=8, backoff=0.5, max_backoff=4.0)
def work(seed: int, i: int, low: float, high: float) -> int:
    """Counts its execution, then works for a while, listening for cancellation. Its retries
    ride out a Postgres restart in its own database call (the side-effect counter)."""
    try:
        count_execution()
    except psycopg.OperationalError as exc:
        raise stepstone.StepError(f"counter unavailable: {exc}") from exc
    deadline = time.monotonic() + step_seconds(seed, i, low, high)
    while time.monotonic() < deadline:
        stepstone.heartbeat()
        time.sleep(0.05)
    return (seed * 31 + i) % 97


@stepstone.workflow
def worker(seed: int, steps: int = 8, low: float = 0.5, high: float = 2.5) -> int:
    return sum(work(seed, i, low, high) for i in range(steps))
