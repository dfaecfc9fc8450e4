"""The Postgres store: every SQL statement stepstone runs lives in this package.

``Store`` is the thin public wrapper: each method owns one transaction, retries it while the
database is unreachable (up to ``retry_seconds``), and calls the small ``*_txn(conn, ...)``
functions of the private modules, which tests and larger transactions reuse. The engine, the
client, the CLI and the operator all go through it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from stepstone.errors import DatabaseUnavailableError
from stepstone.store import _children, _control, _events, _migrations, _runs, _steps
from stepstone.store._hotpath import StepWriter
from stepstone.store.records import (
    HeartbeatReply,
    Progress,
    RunProgress,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)

__all__ = [
    "HeartbeatReply",
    "Progress",
    "RunProgress",
    "RunRecord",
    "RunStatus",
    "StepKind",
    "StepRecord",
    "StepStatus",
    "StepWriter",
    "Store",
    "normalize_url",
]

log = logging.getLogger("stepstone.store")

P = ParamSpec("P")
T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept libpq-style URLs (``postgresql://``, ``postgres://``) and pick the psycopg 3
    driver for SQLAlchemy."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _transient(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError) or exc.connection_invalidated


class Store:
    """A connection pool to the stepstone database and the transactions run on it."""

    def __init__(self, engine: Engine, *, retry_seconds: float = 60.0) -> None:
        self.engine = engine
        self.retry_seconds = retry_seconds

    @classmethod
    def connect(
        cls, url: str, *, retry_seconds: float = 60.0, pool_size: int = 4, app: str = "stepstone"
    ) -> Store:
        engine = create_engine(
            normalize_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            connect_args={"application_name": app, "connect_timeout": 10},
        )
        return cls(engine, retry_seconds=retry_seconds)

    def close(self) -> None:
        self.engine.dispose()

    def _tx(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.1
        while True:
            try:
                with self.engine.begin() as conn:
                    return fn(conn, *args, **kwargs)
            except DBAPIError as exc:
                if not _transient(exc):
                    raise
                if time.monotonic() > deadline:
                    raise DatabaseUnavailableError(
                        f"database unavailable for {self.retry_seconds:.0f} s: {exc.orig}"
                    ) from exc
                log.warning(
                    "database unavailable; retrying",
                    extra={"operation": fn.__name__, "error": str(exc.orig)},
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- schema -------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply missing migrations (only the database's owner calls this)."""
        return self._tx(_migrations.migrate_txn)

    def verify(self) -> int:
        """Refuse to work on a schema version this code does not speak."""
        return self._tx(_migrations.verify_txn)

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        workflow: str,
        entrypoint: str,
        version: str | None,
        input_json: str,
        parent_run_id: str | None = None,
        parent_step: int | None = None,
        pinned_json: str | None = None,
    ) -> tuple[bool, RunRecord]:
        def txn(conn: Connection) -> tuple[bool, RunRecord]:
            created = _runs.insert_run_txn(
                conn,
                run_id=run_id,
                workflow=workflow,
                entrypoint=entrypoint,
                version=version,
                input_json=input_json,
                parent_run_id=parent_run_id,
                parent_step=parent_step,
                pinned_json=pinned_json,
            )
            return created, _runs.require_run_txn(conn, run_id)

        return self._tx(txn)

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._tx(_runs.get_run_txn, run_id)

    def run_family(self, run_id: str) -> tuple[RunRecord | None, list[RunRecord]]:
        return self._tx(_runs.family_txn, run_id)

    def require_run(self, run_id: str) -> RunRecord:
        return self._tx(_runs.require_run_txn, run_id)

    def list_runs(
        self,
        *,
        statuses: list[RunStatus] | None = None,
        parent_run_id: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        return self._tx(
            _runs.list_runs_txn, statuses=statuses, parent_run_id=parent_run_id, limit=limit
        )

    def begin_attempt(self, run_id: str, epoch: int, runner: str) -> RunRecord:
        return self._tx(_runs.begin_attempt_txn, run_id, epoch, runner)

    def claim(self, run_id: str, runner: str) -> RunRecord:
        return self._tx(_runs.claim_txn, run_id, runner)

    def advance_epoch(self, run_id: str, expected: int) -> int | None:
        return self._tx(_runs.advance_epoch_txn, run_id, expected)

    def heartbeat(self, run_id: str, epoch: int, progress: Progress) -> HeartbeatReply:
        return self._tx(_runs.heartbeat_txn, run_id, epoch, progress)

    def finish(
        self,
        run_id: str,
        epoch: int,
        *,
        status: RunStatus,
        output_json: str | None = None,
        error_json: str | None = None,
        completed_steps: int | None = None,
    ) -> None:
        self._tx(
            _runs.finish_txn,
            run_id,
            epoch,
            status=status,
            output_json=output_json,
            error_json=error_json,
            completed_steps=completed_steps,
        )

    def suspend(
        self,
        run_id: str,
        epoch: int,
        *,
        status: RunStatus,
        wake_at: datetime | None,
        waiting_for: str | None,
        completed_steps: int,
    ) -> bool:
        return self._tx(
            _runs.suspend_txn,
            run_id,
            epoch,
            status=status,
            wake_at=wake_at,
            waiting_for=waiting_for,
            completed_steps=completed_steps,
        )

    def cancel_requested_once(self, run_id: str) -> bool:
        """One try, no retry: for a signal handler that must answer within the grace period."""
        with self.engine.begin() as conn:
            return _runs.cancel_requested_txn(conn, run_id)

    def set_status(
        self, run_id: str, status: RunStatus, *, bump_epoch: bool, **values: Any
    ) -> RunRecord:
        return self._tx(_runs.set_status_txn, run_id, status, bump_epoch=bump_epoch, **values)

    def record_failure(
        self, run_id: str, failure: dict[str, Any], *, count_recovery: bool
    ) -> RunRecord:
        return self._tx(_runs.record_failure_txn, run_id, failure, count_recovery=count_recovery)

    # -- verbs --------------------------------------------------------------------------
    def request_cancel(self, run_id: str) -> RunRecord:
        return self._tx(_control.request_cancel_txn, run_id)

    def complete_cancel(self, run_id: str) -> RunRecord:
        return self._tx(_control.complete_cancel_txn, run_id)

    def terminate(self, run_id: str) -> RunRecord:
        return self._tx(_control.terminate_txn, run_id)

    def resume(self, run_id: str, *, force: bool = False) -> RunRecord:
        return self._tx(_control.resume_txn, run_id, force=force)

    def fork(
        self,
        *,
        source_id: str,
        new_run_id: str,
        from_step: int,
        workflow: str | None = None,
        entrypoint: str | None = None,
        version: str | None = None,
        pinned_json: str | None = None,
    ) -> RunRecord:
        return self._tx(
            _control.fork_txn,
            source_id=source_id,
            new_run_id=new_run_id,
            from_step=from_step,
            workflow=workflow,
            entrypoint=entrypoint,
            version=version,
            pinned_json=pinned_json,
        )

    def progress(self, *, changed_since: datetime | None = None) -> list[RunProgress]:
        return self._tx(_runs.progress_txn, changed_since=changed_since)

    # -- steps --------------------------------------------------------------------------
    def load_steps(self, run_id: str) -> list[StepRecord]:
        return self._tx(_steps.load_steps_txn, run_id)

    def writer(self, run_id: str, epoch: int) -> StepWriter:
        return StepWriter(self.engine, run_id, epoch, retry_seconds=self.retry_seconds)

    # -- children -----------------------------------------------------------------------
    def start_child(self, **fields: Any) -> None:
        self._tx(_children.start_child_txn, **fields)

    def park_for_child(
        self, run_id: str, epoch: int, child_run_id: str, completed_steps: int
    ) -> bool:
        return self._tx(_runs.park_for_child_txn, run_id, epoch, child_run_id, completed_steps)

    def set_pinned(self, run_id: str, pinned_json: str) -> None:
        """The operator pins a child run (created by its parent's runner) to a Workflow."""
        self._tx(_runs.set_pinned_txn, run_id, pinned_json)

    # -- events -------------------------------------------------------------------------
    def send_event(
        self, run_id: str, name: str, payload_json: str, dedup_key: str | None = None
    ) -> tuple[bool, RunRecord]:
        key = dedup_key or uuid.uuid4().hex
        return self._tx(_events.send_event_txn, run_id, name, payload_json, key)

    def consume_event(
        self,
        *,
        run_id: str,
        epoch: int,
        step: int,
        step_name: str,
        event_name: str,
        started: float,
        cleanup: bool,
    ) -> tuple[bool, Any]:
        return self._tx(
            _events.consume_event_txn,
            run_id=run_id,
            epoch=epoch,
            step=step,
            step_name=step_name,
            event_name=event_name,
            started=started,
            cleanup=cleanup,
        )

    def consumed_step(self, run_id: str, dedup_key: str) -> int | None:
        return self._tx(_events.consumed_step_txn, run_id, dedup_key)

    def timer_deadline(self, run_id: str, step: int, deadline: datetime | None) -> datetime | None:
        return self._tx(_events.timer_deadline_txn, run_id, step, deadline)
