"""Queries on step records: replay loads, fenced inserts off the hot path, fork copies, archive.

The per-step insert of a running workflow lives in ``_hotpath``; this module holds the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, func, insert, literal, select, text

from stepstone.errors import Fenced
from stepstone.store._tables import step_history, steps
from stepstone.store.records import StepRecord


def load_steps_txn(conn: Connection, run_id: str) -> list[StepRecord]:
    """Every recorded step of a run, in order: replay needs exactly one query."""
    rows = conn.execute(select(steps).where(steps.c.run_id == run_id).order_by(steps.c.step))
    return [StepRecord.from_row(r._mapping) for r in rows]


def get_step_txn(conn: Connection, run_id: str, step: int) -> StepRecord | None:
    row = conn.execute(select(steps).where(steps.c.run_id == run_id, steps.c.step == step)).first()
    return StepRecord.from_row(row._mapping) if row else None


def lock_run_epoch_txn(conn: Connection, run_id: str, epoch: int) -> None:
    """Lock the run row FOR SHARE and check the epoch: a write in this transaction then commits
    only if no newer attempt has started (the operator's epoch raise waits for our commit)."""
    current = conn.execute(
        text("SELECT epoch FROM stepstone.runs WHERE run_id = :r FOR SHARE"), {"r": run_id}
    ).scalar()
    if current is None:
        raise Fenced(f"run {run_id} no longer exists")
    if current != epoch:
        raise Fenced(f"run {run_id} is at attempt {current}; attempt {epoch} may not write")


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
    """Record a step inside a larger transaction (events, children); fenced like the hot path.

    The caller must have called ``lock_run_epoch_txn`` in the same transaction.
    """
    inserted = conn.execute(
        text(
            "INSERT INTO stepstone.steps (run_id, step, name, kind, status, output, error,"
            " started_at, attempts, epoch, cleanup)"
            " VALUES (:run_id, :step, :name, :kind, :status, CAST(:output AS jsonb),"
            " CAST(:error AS jsonb), to_timestamp(:started), :attempts, :epoch, :cleanup)"
            " ON CONFLICT (run_id, step) DO NOTHING RETURNING step"
        ),
        {
            "run_id": run_id,
            "step": step,
            "name": name,
            "kind": kind,
            "status": status,
            "output": output_json,
            "error": error_json,
            "started": started,
            "attempts": attempts,
            "epoch": epoch,
            "cleanup": cleanup,
        },
    ).first()
    if inserted is None:
        raise Fenced(f"step {step} of run {run_id} was already recorded by another runner")


def copy_steps_txn(conn: Connection, *, source: str, target: str, before_step: int) -> int:
    """Copy a run's recorded steps numbered below ``before_step`` into another run (fork)."""
    cols = [c for c in steps.c if c.name != "run_id"]
    query = select(literal(target), *cols).where(
        steps.c.run_id == source, steps.c.step < before_step
    )
    result = conn.execute(insert(steps).from_select(["run_id", *[c.name for c in cols]], query))
    return result.rowcount


def count_steps_txn(conn: Connection, run_id: str) -> int:
    return int(conn.execute(select(func.count()).where(steps.c.run_id == run_id)).scalar() or 0)


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
