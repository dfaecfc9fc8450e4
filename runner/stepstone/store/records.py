"""Plain data read from the database: runs, steps and their states (no I/O here, so the
operator's pure decision code can use these types)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Self


class RunStatus(StrEnum):
    """A run's state as the runner and the verbs record it in Postgres.

    ``cancelling`` is not a status of its own: it is ``running`` with a cancel request.
    """

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def suspended(self) -> bool:
        return self in (RunStatus.SLEEPING, RunStatus.WAITING)


_TERMINAL = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TERMINATED}
)


class StepStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepKind(StrEnum):
    STEP = "step"
    SLEEP = "sleep"
    EVENT = "event"
    CHILD = "child"


def _from_row(cls: type[Any], row: Any) -> Any:
    """Build a dataclass from a mapping (a SQLAlchemy ``RowMapping``) by field name."""
    return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class RunRecord:
    """One row of ``stepstone.runs``."""

    run_id: str
    workflow: str
    entrypoint: str
    version: str | None
    input: Any
    status: RunStatus
    epoch: int
    cancel_requested_at: datetime | None
    output: Any
    error: dict[str, Any] | None
    forked_from: str | None
    fork_step: int | None
    parent_run_id: str | None
    parent_step: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    runner: str | None
    heartbeat_at: datetime | None
    current_step: int | None
    current_step_name: str | None
    current_step_started_at: datetime | None
    completed_steps: int
    wake_at: datetime | None
    waiting_for: str | None
    recoveries: int
    last_failure: dict[str, Any] | None
    pinned: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Any) -> Self:
        rec: Self = _from_row(cls, row)
        object.__setattr__(rec, "status", RunStatus(rec.status))
        return rec

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None


@dataclass(frozen=True)
class StepRecord:
    """One recorded step outcome (a row of ``stepstone.steps``)."""

    run_id: str
    step: int
    name: str
    kind: StepKind
    status: StepStatus
    output: Any
    error: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime
    attempts: int
    epoch: int
    cleanup: bool

    @classmethod
    def from_row(cls, row: Any) -> Self:
        rec: Self = _from_row(cls, row)
        object.__setattr__(rec, "kind", StepKind(rec.kind))
        object.__setattr__(rec, "status", StepStatus(rec.status))
        return rec

    @property
    def duration(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class RunProgress:
    """The part of a run the operator's database watcher compares between polls."""

    run_id: str
    status: RunStatus
    epoch: int
    cancel_requested: bool
    current_step: int | None
    completed_steps: int
    heartbeat_at: datetime | None
    wake_at: datetime | None
    updated_at: datetime

    @property
    def fingerprint(self) -> tuple[object, ...]:
        return (
            self.status,
            self.epoch,
            self.cancel_requested,
            self.current_step,
            self.completed_steps,
            self.wake_at,
        )


@dataclass(frozen=True)
class HeartbeatReply:
    """What the database tells a runner when it renews its lease."""

    cancel_requested: bool
    status: RunStatus


@dataclass(frozen=True)
class Progress:
    """What a runner publishes with each heartbeat."""

    current_step: int | None
    current_step_name: str | None
    current_step_started: float | None
    completed_steps: int
