"""Events sent to runs, and the timers that bound a wait for them.

An event is stored first and consumed later, so one sent before the workflow waits is kept.
Consuming it and recording the waiting step happen in one fenced transaction: each event is
delivered into the run exactly once, whatever crashes around it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from stepstone._serde import dumps
from stepstone.store._runs import require_run_txn
from stepstone.store._steps import insert_step_txn, own_step_txn
from stepstone.store.records import RunRecord, RunStatus


def send_event_txn(
    conn: Connection, run_id: str, name: str, payload_json: str, dedup_key: str
) -> tuple[bool, RunRecord]:
    """Store an event (once per ``dedup_key``) and wake the run if it waits for this name."""
    run = require_run_txn(conn, run_id, lock=True)
    row = conn.execute(
        text(
            "INSERT INTO stepstone.events (run_id, name, payload, dedup_key)"
            " VALUES (:r, :n, CAST(:p AS jsonb), :k)"
            " ON CONFLICT (run_id, dedup_key) DO NOTHING RETURNING id"
        ),
        {"r": run_id, "n": name, "p": payload_json, "k": dedup_key},
    ).first()
    if row is not None and run.status == RunStatus.WAITING and run.waiting_for == name:
        conn.execute(
            text(
                "UPDATE stepstone.runs SET status = 'pending', wake_at = NULL,"
                " waiting_for = NULL, updated_at = now() WHERE run_id = :r"
            ),
            {"r": run_id},
        )
    if row is not None:
        conn.execute(text("SELECT pg_notify('stepstone_events', :r)"), {"r": run_id})
    return row is not None, require_run_txn(conn, run_id)


def consume_event_txn(
    conn: Connection,
    *,
    run_id: str,
    epoch: int,
    step: int,
    step_name: str,
    event_name: str,
    started: float,
    cleanup: bool,
) -> tuple[bool, Any]:
    """Take the oldest pending event of that name and record it as the step's outcome."""
    own = own_step_txn(conn, run_id, epoch, step)
    if own is not None:
        return True, own.output
    row = conn.execute(
        text(
            "SELECT id, payload FROM stepstone.events WHERE run_id = :r AND name = :n"
            " AND consumed_step IS NULL ORDER BY id LIMIT 1 FOR UPDATE"
        ),
        {"r": run_id, "n": event_name},
    ).first()
    if row is None:
        return False, None
    conn.execute(
        text("UPDATE stepstone.events SET consumed_step = :s WHERE id = :id"),
        {"s": step, "id": row[0]},
    )
    insert_step_txn(
        conn,
        run_id=run_id,
        epoch=epoch,
        step=step,
        name=step_name,
        kind="event",
        status="succeeded",
        output_json=dumps(row[1], what="event payload"),
        error_json=None,
        started=started,
        cleanup=cleanup,
    )
    return True, row[1]


def timer_deadline_txn(
    conn: Connection, run_id: str, step: int, deadline: datetime | None
) -> datetime | None:
    """Fix a wait's deadline the first time it starts; later attempts read the same one."""
    conn.execute(
        text(
            "INSERT INTO stepstone.timers (run_id, step, deadline) VALUES (:r, :s, :d)"
            " ON CONFLICT (run_id, step) DO NOTHING"
        ),
        {"r": run_id, "s": step, "d": deadline},
    )
    value: datetime | None = conn.execute(
        text("SELECT deadline FROM stepstone.timers WHERE run_id = :r AND step = :s"),
        {"r": run_id, "s": step},
    ).scalar()
    return value


def consumed_step_txn(conn: Connection, run_id: str, dedup_key: str) -> int | None:
    """Which wait_for_event step took the event sent with this key (None: not yet)."""
    value = conn.execute(
        text("SELECT consumed_step FROM stepstone.events WHERE run_id = :r AND dedup_key = :k"),
        {"r": run_id, "k": dedup_key},
    ).scalar()
    return int(value) if value is not None else None
