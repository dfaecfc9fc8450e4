"""Child runs: started by a step of their parent, in the same transaction that records it."""

from __future__ import annotations

from sqlalchemy import Connection

from stepstone.store._runs import get_run_txn, insert_run_txn
from stepstone.store._steps import insert_step_txn, own_step_txn


def start_child_txn(
    conn: Connection,
    *,
    parent_run_id: str,
    epoch: int,
    step: int,
    step_name: str,
    child_run_id: str,
    workflow: str,
    entrypoint: str,
    input_json: str,
    output_json: str,
    started: float,
    cleanup: bool,
) -> None:
    """Create the child's run and record the parent's step that started it, atomically and
    fenced: a parent that crashes either started the child and recorded it, or neither."""
    if own_step_txn(conn, parent_run_id, epoch, step) is not None:
        return  # an earlier try committed it; its acknowledgement was lost
    insert_run_txn(
        conn,
        run_id=child_run_id,
        workflow=workflow,
        entrypoint=entrypoint,
        version=None,
        input_json=input_json,
        parent_run_id=parent_run_id,
        parent_step=step,
    )
    existing = get_run_txn(conn, child_run_id)
    assert existing is not None and existing.parent_run_id == parent_run_id
    insert_step_txn(
        conn,
        run_id=parent_run_id,
        epoch=epoch,
        step=step,
        name=step_name,
        kind="child",
        status="succeeded",
        output_json=output_json,
        error_json=None,
        started=started,
        cleanup=cleanup,
    )
