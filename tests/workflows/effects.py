"""Counting side effects in Postgres: one row per execution of a step body."""

from __future__ import annotations

import os

import psycopg

import stepstone

ENV = "STEPSTONE_TEST_EFFECTS_URL"

DDL = """
CREATE TABLE IF NOT EXISTS test_effects (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    step integer,
    tag text NOT NULL,
    attempt integer,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
)
"""


def install(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL)


def record(tag: str) -> None:
    """Count one execution of the calling step's body."""
    info = stepstone.current_run()
    with psycopg.connect(os.environ[ENV], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO test_effects (run_id, step, tag, attempt, pid) VALUES (%s,%s,%s,%s,%s)",
            (
                info.run_id if info else "-",
                info.step if info else None,
                tag,
                info.attempt if info else None,
                os.getpid(),
            ),
        )


def counts(url: str, run_id: str) -> dict[str, int]:
    """How many times each tag's body ran for a run."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tag, count(*) FROM test_effects WHERE run_id = %s GROUP BY tag", (run_id,)
        ).fetchall()
    return {tag: n for tag, n in rows}


def count_for_current_run(tag: str) -> int:
    info = stepstone.current_run()
    assert info is not None
    return counts(os.environ[ENV], info.run_id).get(tag, 0)
