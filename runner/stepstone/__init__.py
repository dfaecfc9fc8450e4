"""stepstone: durable Python workflows, checkpointed to Postgres, run in Kubernetes pods.

Write ordinary functions, mark them ``@workflow`` and ``@step``; each step's outcome is
recorded once and replayed after any crash. See the README for the tour.
"""

from stepstone._calls import (
    RunInfo,
    current_run,
    heartbeat,
    sleep,
    sleep_async,
    wait_for_event,
    wait_for_event_async,
)
from stepstone._children import ChildHandle, start_child, wait_child
from stepstone._engine import Outcome, OutcomeKind
from stepstone._state import ExecuteOptions, StepEvent
from stepstone._workflows import step, workflow
from stepstone.client import Client, RunHandle
from stepstone.errors import (
    Cancelled,
    ChildRunError,
    DatabaseUnavailableError,
    EntrypointError,
    EventTimeoutError,
    Fenced,
    InputError,
    InvalidTransitionError,
    NonDeterminismError,
    RunCancelledError,
    RunConflictError,
    RunFailedError,
    RunNotFoundError,
    SchemaVersionError,
    SerializationError,
    StepError,
    StepFailed,
    StepstoneError,
    StepTimeoutError,
)
from stepstone.store import RunRecord, RunStatus, StepRecord

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "ChildHandle",
    "ChildRunError",
    "Client",
    "DatabaseUnavailableError",
    "EntrypointError",
    "EventTimeoutError",
    "ExecuteOptions",
    "Fenced",
    "InputError",
    "InvalidTransitionError",
    "NonDeterminismError",
    "Outcome",
    "OutcomeKind",
    "RunCancelledError",
    "RunConflictError",
    "RunFailedError",
    "RunHandle",
    "RunInfo",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SchemaVersionError",
    "SerializationError",
    "StepError",
    "StepEvent",
    "StepFailed",
    "StepRecord",
    "StepTimeoutError",
    "StepstoneError",
    "current_run",
    "heartbeat",
    "sleep",
    "sleep_async",
    "start_child",
    "step",
    "wait_child",
    "wait_for_event",
    "wait_for_event_async",
    "workflow",
]
