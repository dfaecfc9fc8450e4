"""The per-step checkpoint: one statement, one round trip, one commit.

This is the hot path of every workflow, so it bypasses SQLAlchemy's result machinery and
talks to the psycopg connection underneath the pool directly (measured: about a third of the
per-step cost otherwise). The statement, in a single autocommit round trip:

1. locks the run row FOR SHARE and reads its epoch and cancel request. The operator's
   epoch raise (an UPDATE) waits for this lock, and a stale epoch makes step 2 insert nothing:
   a runner's record commits only while its attempt is current (fencing);
2. inserts the step record, ``ON CONFLICT DO NOTHING``: a second writer of the same step is
   detected, never overwritten;
3. returns the epoch, the cancel flag and whether the row was inserted, so the runner learns
   of a cancel request at every step boundary without another query.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg

from stepstone.errors import DatabaseUnavailableError, Fenced

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("stepstone.store")

RECORD_SQL = """
WITH run AS (
    SELECT epoch, cancel_requested_at IS NOT NULL AS cancel
    FROM stepstone.runs WHERE run_id = %(run_id)s FOR SHARE
), ins AS (
    INSERT INTO stepstone.steps
        (run_id, step, name, kind, status, output, error, started_at, attempts, epoch, cleanup)
    SELECT %(run_id)s, %(step)s, %(name)s, %(kind)s, %(status)s, %(output)s::jsonb,
           %(error)s::jsonb, to_timestamp(%(started)s), %(attempts)s, %(epoch)s, %(cleanup)s
    FROM run WHERE run.epoch = %(epoch)s
    ON CONFLICT (run_id, step) DO NOTHING
    RETURNING 1
)
SELECT run.epoch, run.cancel, (SELECT count(*) FROM ins) FROM run
"""

_EXISTING = "SELECT epoch, name FROM stepstone.steps WHERE run_id = %s AND step = %s"


class StepWriter:
    """Records the steps of one attempt of one run over a connection it keeps."""

    def __init__(self, engine: Engine, run_id: str, epoch: int, *, retry_seconds: float) -> None:
        self._engine = engine
        self._run_id = run_id
        self._epoch = epoch
        self._retry_seconds = retry_seconds
        self._pooled: Any = None

    def _conn(self) -> psycopg.Connection[Any]:
        if self._pooled is None:
            self._pooled = self._engine.raw_connection()
            driver = self._pooled.driver_connection
            driver.autocommit = True
        conn: psycopg.Connection[Any] = self._pooled.driver_connection
        return conn

    def _drop(self) -> None:
        if self._pooled is not None:
            try:
                self._pooled.invalidate()
            finally:
                self._pooled = None

    def close(self) -> None:
        if self._pooled is not None:
            driver = self._pooled.driver_connection
            driver.autocommit = False
            self._pooled.close()
            self._pooled = None

    def record(
        self,
        *,
        step: int,
        name: str,
        kind: str,
        status: str,
        output_json: str | None,
        error_json: str | None,
        started: float,
        attempts: int,
        cleanup: bool,
    ) -> bool:
        """Record a step outcome; returns whether a cancel is requested. Raises ``Fenced``."""
        params = record_params(
            run_id=self._run_id,
            epoch=self._epoch,
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
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.05
        retried = False
        while True:
            try:
                conn = self._conn()
                row = conn.execute(RECORD_SQL, params, prepare=True).fetchone()
                if retried and row is not None and row[0] == self._epoch and not row[2]:
                    existing = conn.execute(_EXISTING, (self._run_id, step)).fetchone()
                    if existing is not None and existing[0] == self._epoch and existing[1] == name:
                        # Our own earlier commit whose acknowledgement was lost: done.
                        row = (row[0], row[1], 1)
                break
            except psycopg.OperationalError as exc:
                self._drop()
                retried = True
                if time.monotonic() > deadline:
                    raise DatabaseUnavailableError(
                        f"could not record step {step} of run {self._run_id}: {exc}"
                    ) from exc
                log.warning(
                    "database unavailable while recording a step; retrying",
                    extra={"run_id": self._run_id, "step": step, "error": str(exc)},
                )
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        return record_outcome(row, run_id=self._run_id, epoch=self._epoch, step=step)


def record_params(
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
    attempts: int,
    cleanup: bool,
) -> dict[str, Any]:
    return {
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
    }


def record_outcome(row: Any, *, run_id: str, epoch: int, step: int) -> bool:
    """Read RECORD_SQL's answer: whether a cancel is requested, or ``Fenced`` when this
    attempt is stale or another writer recorded the step first."""
    if row is None:
        raise Fenced(f"run {run_id} no longer exists; step {step} not recorded")
    current, cancel, inserted = row
    if current != epoch:
        raise Fenced(
            f"run {run_id} is at attempt {current}; attempt {epoch} may not record step {step}"
        )
    if not inserted:
        raise Fenced(
            f"step {step} of run {run_id} was already recorded by another runner of "
            f"attempt {epoch}; the first record stands"
        )
    return bool(cancel)
