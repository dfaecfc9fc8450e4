"""What a reconcile may do, as data: ``decide`` returns these, ``reconcile`` carries them out."""

from __future__ import annotations

from dataclasses import dataclass

from stepstone_operator.api import ForkRequest, WorkflowSpec
from stepstone_operator.classify import Loss


@dataclass(frozen=True)
class CreateRun:
    """Create the run's Postgres row, pinning the Workflow's spec."""

    workflow: str
    spec: WorkflowSpec


@dataclass(frozen=True)
class ForkRun:
    """Create the run's Postgres row as a fork of another run's records."""

    source_run_id: str
    from_step: int
    workflow: str
    spec: WorkflowSpec


@dataclass(frozen=True)
class RequestCancel:
    pass


@dataclass(frozen=True)
class CompleteCancel:
    """The runner is gone before recording its cancellation: record it for it."""


@dataclass(frozen=True)
class Terminate:
    pass


@dataclass(frozen=True)
class Resume:
    why: str


@dataclass(frozen=True)
class RecordLoss:
    """Keep the evidence of a lost pod (its log tail is fetched while it still exists) and count
    it against the recovery budget."""

    loss: Loss


@dataclass(frozen=True)
class FailRun:
    reason: str
    message: str


@dataclass(frozen=True)
class LaunchPod:
    """Raise the epoch from ``expected_epoch`` (fencing every older runner), then create the
    pod of the new attempt."""

    expected_epoch: int


@dataclass(frozen=True)
class DeletePod:
    name: str
    grace_seconds: int | None
    why: str


@dataclass(frozen=True)
class CreateFork:
    request: ForkRequest


@dataclass(frozen=True)
class CreateChild:
    """Give a child run (started by its parent's runner) a WorkflowRun owned by the parent."""

    run_id: str
    name: str
    entrypoint: str


@dataclass(frozen=True)
class PatchChildState:
    """Pass the parent's cancel or terminate on to a child's spec."""

    name: str
    state: str


@dataclass(frozen=True)
class DeleteRunObject:
    why: str


Action = (
    CreateRun
    | ForkRun
    | RequestCancel
    | CompleteCancel
    | Terminate
    | Resume
    | RecordLoss
    | FailRun
    | LaunchPod
    | DeletePod
    | CreateFork
    | CreateChild
    | PatchChildState
    | DeleteRunObject
)

DATABASE_ACTIONS = (
    CreateRun,
    ForkRun,
    RequestCancel,
    CompleteCancel,
    Terminate,
    Resume,
    RecordLoss,
    FailRun,
)
"""Actions that change the run's Postgres row: the reconcile observes again after them."""
