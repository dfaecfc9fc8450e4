"""Queries on runs: creation, attempts and fencing, heartbeats, outcomes, listings.

Every function here is one small piece of a transaction (``*_txn(conn, ...)``); the ``Store``
facade owns the transaction and its retry. Writes by a runner carry its epoch and change
nothing when the epoch is stale; they raise ``Fenced`` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text, update

from stepstone.errors import Fenced, RunNotFoundError
from stepstone.store._tables import runs
from stepstone.store.records import (
    HeartbeatReply,
    Progress,
    RunProgress,
    RunRecord,
    RunStatus,
)

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SLEEPING, RunStatus.WAITING)


def get_run_txn(conn: Connection, run_id: str, *, lock: bool = False) -> RunRecord | None:
    query = select(runs).where(runs.c.run_id == run_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return RunRecord.from_row(row._mapping) if row else None


def family_txn(conn: Connection, run_id: str) -> tuple[RunRecord | None, list[RunRecord]]:
    """A run and its child runs, in one query (the operator reads both on every reconcile)."""
    rows = conn.execute(
        select(runs)
        .where((runs.c.run_id == run_id) | (runs.c.parent_run_id == run_id))
        .order_by(runs.c.parent_step.nulls_first(), runs.c.run_id)
    )
    run: RunRecord | None = None
    children = []
    for row in rows:
        record = RunRecord.from_row(row._mapping)
        if record.run_id == run_id:
            run = record
        else:
            children.append(record)
    return run, children


def require_run_txn(conn: Connection, run_id: str, *, lock: bool = False) -> RunRecord:
    run = get_run_txn(conn, run_id, lock=lock)
    if run is None:
        raise RunNotFoundError(f"no run with id {run_id!r}")
    return run


def insert_run_txn(
    conn: Connection,
    *,
    run_id: str,
    workflow: str,
    entrypoint: str,
    version: str | None,
    input_json: str,
    forked_from: str | None = None,
    fork_step: int | None = None,
    parent_run_id: str | None = None,
    parent_step: int | None = None,
    pinned_json: str | None = None,
) -> bool:
    """Insert a pending run; False when the id exists already (the caller compares)."""
    row = conn.execute(
        text(
            "INSERT INTO stepstone.runs (run_id, workflow, entrypoint, version, input, status,"
            " forked_from, fork_step, parent_run_id, parent_step, pinned)"
            " VALUES (:run_id, :workflow, :entrypoint, :version, CAST(:input AS jsonb),"
            " 'pending', :forked_from, :fork_step, :parent_run_id, :parent_step,"
            " CAST(:pinned AS jsonb))"
            " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
        ),
        {
            "run_id": run_id,
            "workflow": workflow,
            "entrypoint": entrypoint,
            "version": version,
            "input": input_json,
            "forked_from": forked_from,
            "fork_step": fork_step,
            "parent_run_id": parent_run_id,
            "parent_step": parent_step,
            "pinned": pinned_json,
        },
    ).first()
    return row is not None


def progress_txn(conn: Connection, *, changed_since: datetime | None) -> list[RunProgress]:
    """Every unfinished run, and those that changed since ``changed_since``: what the
    operator's database watcher compares to notice progress, parking, wake-ups and endings."""
    rows = conn.execute(
        text(
            "SELECT run_id, status, epoch, cancel_requested_at IS NOT NULL AS cancel_requested,"
            " current_step, completed_steps, heartbeat_at, wake_at, updated_at"
            " FROM stepstone.runs"
            " WHERE status IN ('pending', 'running', 'sleeping', 'waiting')"
            " OR updated_at > :since"
        ),
        {"since": changed_since or datetime.fromtimestamp(0, UTC)},
    )
    return [
        RunProgress(
            run_id=r.run_id,
            status=RunStatus(r.status),
            epoch=r.epoch,
            cancel_requested=r.cancel_requested,
            current_step=r.current_step,
            completed_steps=r.completed_steps,
            heartbeat_at=r.heartbeat_at,
            wake_at=r.wake_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


def list_runs_txn(
    conn: Connection,
    *,
    statuses: list[RunStatus] | None = None,
    parent_run_id: str | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    query = select(runs).order_by(runs.c.created_at.desc()).limit(limit)
    if statuses:
        query = query.where(runs.c.status.in_([str(s) for s in statuses]))
    if parent_run_id is not None:
        query = query.where(runs.c.parent_run_id == parent_run_id)
    return [RunRecord.from_row(r._mapping) for r in conn.execute(query)]


def begin_attempt_txn(conn: Connection, run_id: str, epoch: int, runner: str) -> RunRecord:
    """A runner given an attempt by the operator starts it, if that attempt is still current.

    Finished runs are returned unchanged: a relaunched pod of a run that already ended must
    report the recorded outcome, not run again.
    """
    run = require_run_txn(conn, run_id, lock=True)
    if run.epoch != epoch:
        raise Fenced(f"run {run_id} is at attempt {run.epoch}; this runner has attempt {epoch}")
    if run.status.terminal:
        return run
    return _set_running_txn(conn, run_id, runner)


def claim_txn(conn: Connection, run_id: str, runner: str) -> RunRecord:
    """Take a run for execution in this process (local mode): raise the epoch, so any older
    runner of it is fenced from now on."""
    run = require_run_txn(conn, run_id, lock=True)
    if run.status.terminal:
        return run
    conn.execute(update(runs).where(runs.c.run_id == run_id).values(epoch=runs.c.epoch + 1))
    return _set_running_txn(conn, run_id, runner)


def _set_running_txn(conn: Connection, run_id: str, runner: str) -> RunRecord:
    row = conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(
            status=RunStatus.RUNNING,
            runner=runner,
            heartbeat_at=func.now(),
            updated_at=func.now(),
            started_at=func.coalesce(runs.c.started_at, func.now()),
            wake_at=None,
            waiting_for=None,
        )
        .returning(*runs.c)
    ).one()
    return RunRecord.from_row(row._mapping)


def advance_epoch_txn(conn: Connection, run_id: str, expected: int) -> int | None:
    """Raise the epoch from ``expected`` (the operator, before it creates the next pod).

    Returns the new epoch, or None when someone else moved it first. The UPDATE waits for any
    runner transaction holding the row FOR SHARE, so once this commits no write of an older
    attempt can commit.
    """
    row = conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id, runs.c.epoch == expected)
        .values(epoch=runs.c.epoch + 1, updated_at=func.now())
        .returning(runs.c.epoch)
    ).first()
    return int(row[0]) if row else None


def heartbeat_txn(conn: Connection, run_id: str, epoch: int, progress: Progress) -> HeartbeatReply:
    row = conn.execute(
        text(
            "UPDATE stepstone.runs SET heartbeat_at = now(), current_step = :cs,"
            " current_step_name = :csn, current_step_started_at = to_timestamp(:css),"
            " completed_steps = greatest(completed_steps, :done)"
            " WHERE run_id = :r AND epoch = :e"
            " RETURNING cancel_requested_at IS NOT NULL, status"
        ),
        {
            "cs": progress.current_step,
            "csn": progress.current_step_name,
            "css": progress.current_step_started,
            "done": progress.completed_steps,
            "r": run_id,
            "e": epoch,
        },
    ).first()
    if row is None:
        raise Fenced(f"run {run_id}: attempt {epoch} is no longer current")
    return HeartbeatReply(cancel_requested=bool(row[0]), status=RunStatus(row[1]))


def finish_txn(
    conn: Connection,
    run_id: str,
    epoch: int,
    *,
    status: RunStatus,
    output_json: str | None = None,
    error_json: str | None = None,
    completed_steps: int | None = None,
) -> None:
    """Record how the run ended; fenced by epoch."""
    row = conn.execute(
        text(
            "UPDATE stepstone.runs SET status = :status, output = CAST(:output AS jsonb),"
            " error = CAST(:error AS jsonb), finished_at = now(), updated_at = now(),"
            " current_step = NULL, current_step_name = NULL, current_step_started_at = NULL,"
            " wake_at = NULL, waiting_for = NULL,"
            " completed_steps = coalesce(:done, completed_steps)"
            " WHERE run_id = :r AND epoch = :e RETURNING parent_run_id"
        ),
        {
            "status": str(status),
            "output": output_json,
            "error": error_json,
            "done": completed_steps,
            "r": run_id,
            "e": epoch,
        },
    ).first()
    if row is None:
        raise Fenced(f"run {run_id}: attempt {epoch} may not record its outcome")
    if row[0] is not None:
        wake_parent_txn(conn, run_id)


def suspend_txn(
    conn: Connection,
    run_id: str,
    epoch: int,
    *,
    status: RunStatus,
    wake_at: datetime | None,
    waiting_for: str | None,
    completed_steps: int,
) -> bool:
    """Park a run until ``wake_at`` (sleep) or an event (wait); fenced by epoch.

    For a wait, returns False without parking when a matching event is already there, so an
    event sent between the runner's last look and this call is never missed (``send_event``
    takes the same row lock).
    """
    run = conn.execute(
        text("SELECT epoch FROM stepstone.runs WHERE run_id = :r FOR UPDATE"), {"r": run_id}
    ).scalar()
    if run != epoch:
        raise Fenced(f"run {run_id}: attempt {epoch} may not suspend it")
    if waiting_for is not None:
        pending = conn.execute(
            text(
                "SELECT 1 FROM stepstone.events WHERE run_id = :r AND name = :n"
                " AND consumed_step IS NULL LIMIT 1"
            ),
            {"r": run_id, "n": waiting_for},
        ).first()
        if pending:
            return False
    _park_txn(conn, run_id, status, wake_at, waiting_for, completed_steps)
    return True


def _park_txn(
    conn: Connection,
    run_id: str,
    status: RunStatus,
    wake_at: datetime | None,
    waiting_for: str | None,
    completed_steps: int,
) -> None:
    conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(
            status=status,
            wake_at=wake_at,
            waiting_for=waiting_for,
            current_step=None,
            current_step_name=None,
            current_step_started_at=None,
            completed_steps=completed_steps,
            updated_at=func.now(),
        )
    )


def cancel_requested_txn(conn: Connection, run_id: str) -> bool:
    value = conn.execute(select(runs.c.cancel_requested_at).where(runs.c.run_id == run_id)).first()
    return bool(value and value[0] is not None)


def set_status_txn(
    conn: Connection,
    run_id: str,
    status: RunStatus,
    /,
    *,
    bump_epoch: bool,
    error: dict[str, Any] | None = None,
    **values: Any,
) -> RunRecord:
    """Force a run into ``status`` (the verbs and the operator use this), fencing if asked."""
    changes: dict[str, Any] = {"status": status, "updated_at": func.now(), **values}
    if bump_epoch:
        changes["epoch"] = runs.c.epoch + 1
    if error is not None:
        changes["error"] = error
    if status.terminal:
        changes.setdefault("finished_at", func.now())
        changes.update(current_step=None, current_step_name=None, current_step_started_at=None)
    row = conn.execute(
        update(runs).where(runs.c.run_id == run_id).values(**changes).returning(*runs.c)
    ).one()
    record = RunRecord.from_row(row._mapping)
    if status.terminal and record.parent_run_id is not None:
        wake_parent_txn(conn, run_id)
    return record


def record_failure_txn(
    conn: Connection, run_id: str, failure: dict[str, Any], *, count_recovery: bool
) -> RunRecord:
    """Keep the evidence of a lost attempt (reason, exit code, log tail) on the run."""
    values: dict[str, Any] = {"last_failure": failure, "updated_at": func.now()}
    if count_recovery:
        values["recoveries"] = runs.c.recoveries + 1
    row = conn.execute(
        update(runs).where(runs.c.run_id == run_id).values(**values).returning(*runs.c)
    ).one()
    return RunRecord.from_row(row._mapping)


def wake_parent_txn(conn: Connection, child_run_id: str) -> None:
    """A child run ended: a parent parked waiting for it becomes runnable again."""
    conn.execute(
        text(
            "UPDATE stepstone.runs AS p SET status = 'pending', waiting_for = NULL,"
            " wake_at = NULL, updated_at = now()"
            " FROM stepstone.runs AS c"
            " WHERE c.run_id = :child AND p.run_id = c.parent_run_id"
            " AND p.status = 'waiting' AND p.waiting_for = 'child:' || c.run_id"
        ),
        {"child": child_run_id},
    )


def park_for_child_txn(
    conn: Connection, run_id: str, epoch: int, child_run_id: str, completed_steps: int
) -> bool:
    """Park a parent until its child ends; False (not parked) when it has ended already.
    Locking the child row first means a child that ends concurrently either is seen ended
    here, or wakes the parked parent."""
    child = conn.execute(
        text("SELECT status FROM stepstone.runs WHERE run_id = :c FOR SHARE"),
        {"c": child_run_id},
    ).scalar()
    if child is None or RunStatus(child).terminal:
        return False
    current = conn.execute(
        text("SELECT epoch FROM stepstone.runs WHERE run_id = :r FOR UPDATE"), {"r": run_id}
    ).scalar()
    if current != epoch:
        raise Fenced(f"run {run_id}: attempt {epoch} may not park it")
    _park_txn(conn, run_id, RunStatus.WAITING, None, f"child:{child_run_id}", completed_steps)
    return True


def set_pinned_txn(conn: Connection, run_id: str, pinned_json: str) -> None:
    conn.execute(
        text(
            "UPDATE stepstone.runs SET pinned = CAST(:p AS jsonb), updated_at = now()"
            " WHERE run_id = :r AND pinned IS NULL"
        ),
        {"r": run_id, "p": pinned_json},
    )
