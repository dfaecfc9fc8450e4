"""Queries on step records: replay loads, fenced inserts off the hot path, fork copies, archive.

The per-step insert of a running workflow lives in ``_hotpath``; this module holds the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, insert, literal, select

from stepstone.store._hotpath import RECORD_SQL, record_outcome, record_params
from stepstone.store._tables import step_history, steps
from stepstone.store.records import StepRecord


def load_steps_txn(conn: Connection, run_id: str) -> list[StepRecord]:
    """Every recorded step of a run, in order: replay needs exactly one query."""
    rows = conn.execute(select(steps).where(steps.c.run_id == run_id).order_by(steps.c.step))
    return [StepRecord.from_row(r._mapping) for r in rows]


def get_step_txn(conn: Connection, run_id: str, step: int) -> StepRecord | None:
    row = conn.execute(select(steps).where(steps.c.run_id == run_id, steps.c.step == step)).first()
    return StepRecord.from_row(row._mapping) if row else None


def insert_step_txn(
    conn: Connection,
    *,
    run_id: str,
    epoch: int,
    step: int,
    name: str,
    kind: str,
    status: str,
    output_json: str | None,
    error_json: str | None,
    started: float,
    attempts: int = 1,
    cleanup: bool = False,
) -> None:
    """Record a step inside a larger transaction (events, children) with the hot path's own
    fenced statement; ``Fenced`` rolls the whole transaction back."""
    params = record_params(
        run_id=run_id,
        epoch=epoch,
        step=step,
        name=name,
        kind=kind,
        status=status,
        output_json=output_json,
        error_json=error_json,
        started=started,
        attempts=attempts,
        cleanup=cleanup,
    )
    row = conn.exec_driver_sql(RECORD_SQL, params).first()
    record_outcome(row, run_id=run_id, epoch=epoch, step=step)


def own_step_txn(conn: Connection, run_id: str, epoch: int, step: int) -> StepRecord | None:
    """This attempt's own record of ``step``, if an earlier try of the same transaction
    committed it but its acknowledgement was lost (the store retries on disconnects)."""
    rec = get_step_txn(conn, run_id, step)
    return rec if rec is not None and rec.epoch == epoch else None


def copy_steps_txn(conn: Connection, *, source: str, target: str, before_step: int) -> int:
    """Copy a run's recorded steps numbered below ``before_step`` into another run (fork)."""
    cols = [c for c in steps.c if c.name != "run_id"]
    query = select(literal(target), *cols).where(
        steps.c.run_id == source, steps.c.step < before_step
    )
    result = conn.execute(insert(steps).from_select(["run_id", *[c.name for c in cols]], query))
    return result.rowcount


def archive_steps_txn(conn: Connection, run_id: str, numbers: Sequence[int], by: str) -> int:
    """Move steps out of a run's live history into ``step_history`` (resume uses this)."""
    if not numbers:
        return 0
    cond = and_(steps.c.run_id == run_id, steps.c.step.in_(list(numbers)))
    conn.execute(
        insert(step_history).from_select(
            [c.name for c in steps.c] + ["archived_by"],
            select(*steps.c, literal(by)).where(cond),
        )
    )
    return conn.execute(steps.delete().where(cond)).rowcount
