"""The verbs on a run: cancel, terminate, resume, fork. Each is idempotent.

The transitions (the docs' table is built from these rules):

- cancel: running -> running with a cancel request (the runner stops at the next step
  boundary and ends ``cancelled``); pending/sleeping/waiting -> cancelled at once, epoch raised;
  finished -> unchanged. Reaches child runs.
- terminate: any unfinished run -> terminated, epoch raised (its runner is fenced: nothing it
  does afterwards is recorded); finished -> unchanged. Reaches child runs.
- resume: cancelled/terminated/failed -> pending, epoch raised; the cleanup steps of a cancel
  and the trailing failed steps of a failure are archived, so replay takes the normal path and
  the failed step runs again; the pod-loss budget (``recoveries``) starts afresh. Active runs
  are left alone. Succeeded runs cannot be resumed (fork them).
- fork: a new pending run that reuses the source's steps numbered below ``from_step``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update

from stepstone._serde import dumps
from stepstone.errors import InvalidTransitionError, RunConflictError
from stepstone.store._runs import (
    ACTIVE,
    get_run_txn,
    insert_run_txn,
    require_run_txn,
    set_status_txn,
)
from stepstone.store._steps import archive_steps_txn, copy_steps_txn, load_steps_txn
from stepstone.store._tables import runs
from stepstone.store.records import RunRecord, RunStatus, StepRecord, StepStatus


def _children_txn(conn: Connection, run_id: str) -> list[str]:
    rows = conn.execute(
        select(runs.c.run_id).where(
            runs.c.parent_run_id == run_id, runs.c.status.in_([str(s) for s in ACTIVE])
        )
    )
    return [r[0] for r in rows]


def request_cancel_txn(conn: Connection, run_id: str) -> RunRecord:
    run = require_run_txn(conn, run_id, lock=True)
    if run.status.terminal:
        return run
    stamp: dict[str, Any] = {
        "cancel_requested_at": func.coalesce(runs.c.cancel_requested_at, func.now())
    }
    if run.status == RunStatus.RUNNING:
        row = conn.execute(
            update(runs).where(runs.c.run_id == run_id).values(**stamp).returning(*runs.c)
        ).one()
        result = RunRecord.from_row(row._mapping)
    else:
        result = set_status_txn(
            conn,
            run_id,
            RunStatus.CANCELLED,
            bump_epoch=True,
            wake_at=None,
            waiting_for=None,
            **stamp,
        )
    for child in _children_txn(conn, run_id):
        request_cancel_txn(conn, child)
    return result


def complete_cancel_txn(conn: Connection, run_id: str) -> RunRecord:
    """End a cancel whose runner is gone (killed after the grace period, or never ran)."""
    run = require_run_txn(conn, run_id, lock=True)
    if run.status.terminal or run.cancel_requested_at is None:
        return run
    return set_status_txn(conn, run_id, RunStatus.CANCELLED, bump_epoch=True)


def terminate_txn(conn: Connection, run_id: str) -> RunRecord:
    run = require_run_txn(conn, run_id, lock=True)
    if run.status.terminal:
        return run
    result = set_status_txn(
        conn,
        run_id,
        RunStatus.TERMINATED,
        bump_epoch=True,
        wake_at=None,
        waiting_for=None,
        cancel_requested_at=func.coalesce(runs.c.cancel_requested_at, func.now()),
    )
    for child in _children_txn(conn, run_id):
        terminate_txn(conn, child)
    return result


def resume_txn(conn: Connection, run_id: str, *, force: bool = False) -> RunRecord:
    """Make a stopped run runnable again from its last completed step.

    ``force`` also takes over a run recorded as running (its runner died without a trace;
    the caller has checked the heartbeat is stale).
    """
    run = require_run_txn(conn, run_id, lock=True)
    if run.status == RunStatus.SUCCEEDED:
        raise InvalidTransitionError(
            f"run {run_id} succeeded; there is nothing to resume (fork it to run steps again)"
        )
    if run.status in ACTIVE and not (force and run.status == RunStatus.RUNNING):
        return run
    records = load_steps_txn(conn, run_id)
    drop = [r.step for r in records if r.cleanup]
    kept = [r for r in records if not r.cleanup]
    # Trailing failed steps made the run fail; archived, they run again on resume.
    while kept and kept[-1].status == StepStatus.FAILED:
        drop.append(kept.pop().step)
    archive_steps_txn(conn, run_id, drop, by=f"resume of {run.status}")
    return set_status_txn(
        conn,
        run_id,
        RunStatus.PENDING,
        bump_epoch=True,
        cancel_requested_at=None,
        error=None,
        output=None,
        finished_at=None,
        wake_at=None,
        waiting_for=None,
        completed_steps=len(kept),
        recoveries=0,  # a resumed run gets a fresh pod-loss budget
    )


def fork_txn(
    conn: Connection,
    *,
    source_id: str,
    new_run_id: str,
    from_step: int,
    workflow: str | None,
    entrypoint: str | None,
    version: str | None,
    pinned_json: str | None = None,
) -> RunRecord:
    """Create ``new_run_id`` reusing ``source_id``'s steps before ``from_step``; the source
    is only read."""
    source = require_run_txn(conn, source_id)
    if from_step < 1:
        raise InvalidTransitionError(f"fork step must be 1 or more, not {from_step}")
    reusable = [r for r in load_steps_txn(conn, source_id) if r.step < from_step]
    expected = list(range(1, from_step))
    if [r.step for r in reusable] != expected or any(r.cleanup for r in reusable):
        have = _leading_steps(reusable)
        raise InvalidTransitionError(
            f"run {source_id} has {have} completed step(s) in order, so it can be forked from "
            f"step 1 to {have + 1}, not from step {from_step}"
        )
    target_entrypoint = entrypoint or source.entrypoint
    target_version = version if version is not None else source.version
    created = insert_run_txn(
        conn,
        run_id=new_run_id,
        workflow=workflow or source.workflow,
        entrypoint=target_entrypoint,
        version=target_version,
        input_json=_json(source.input),
        forked_from=source_id,
        fork_step=from_step,
        pinned_json=pinned_json,
    )
    existing = get_run_txn(conn, new_run_id)
    assert existing is not None
    if not created:
        same = (
            existing.forked_from == source_id
            and existing.fork_step == from_step
            and existing.entrypoint == target_entrypoint
        )
        if not same:
            raise RunConflictError(
                f"run id {new_run_id!r} exists and is not a fork of {source_id} from step "
                f"{from_step}; choose another id"
            )
        return existing
    copy_steps_txn(conn, source=source_id, target=new_run_id, before_step=from_step)
    conn.execute(
        update(runs).where(runs.c.run_id == new_run_id).values(completed_steps=from_step - 1)
    )
    return require_run_txn(conn, new_run_id)


def _leading_steps(records: list[StepRecord]) -> int:
    count = 0
    for expected, rec in enumerate(records, start=1):
        if rec.step != expected or rec.cleanup:
            break
        count = expected
    return count


def _json(value: object) -> str:
    return dumps(value, what="input")
