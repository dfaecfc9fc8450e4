"""The WorkflowRun resource: one durable execution, steered through its spec."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from stepstone_operator.api._base import ApiModel, Condition, LocalObjectReference

NAME_MAX = 55
"""Pods are named <run>-<attempt> and labelled with the run's name (63 characters at most)."""


class DesiredState(StrEnum):
    RUNNING = "Running"
    CANCELLED = "Cancelled"
    TERMINATED = "Terminated"


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SLEEPING = "Sleeping"
    WAITING = "Waiting"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    TERMINATED = "Terminated"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (Phase.CANCELLED, Phase.TERMINATED, Phase.SUCCEEDED, Phase.FAILED)


class ForkFrom(ApiModel):
    """Where a fork starts: a run and the first step it runs again."""

    run: str = Field(
        min_length=1, max_length=253, description="WorkflowRun to fork, same namespace."
    )
    step: int = Field(
        ge=1, description="First step to run again; the source's steps before it are reused."
    )


class ForkRequest(ApiModel):
    """A fork to create from this run."""

    name: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of the WorkflowRun to create.",
    )
    from_step: int = Field(ge=1, description="First step the fork runs again.")
    workflow_ref: LocalObjectReference | None = Field(
        default=None, description="Run the fork on this Workflow (default: the source's)."
    )


class WorkflowRunSpec(ApiModel):
    """The run's input and the state its owner wants it in."""

    workflow_ref: LocalObjectReference = Field(description="The Workflow to run. Immutable.")
    input: dict[str, Any] | None = Field(
        default=None,
        description="Input of the workflow: a JSON object, passed as keyword arguments (a "
        "workflow of one parameter receives it whole). Immutable.",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    fork_from: ForkFrom | None = Field(
        default=None,
        description="Start as a fork of another run, reusing its steps before `step`. Immutable.",
    )
    state: DesiredState = Field(
        default=DesiredState.RUNNING,
        description="Running; Cancelled (graceful: stop at the next step, run cleanup); "
        "Terminated (stop now). Set Running again to resume from the last completed step.",
    )
    retry: int = Field(
        default=0, ge=0, description="Raise it to resume a Failed run (a fresh recovery budget)."
    )
    forks: list[ForkRequest] = Field(
        default_factory=list,
        max_length=100,
        description="Forks to create from this run; each becomes a WorkflowRun of its own.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Delete this WorkflowRun this long after it finished (its records stay in "
        "Postgres).",
    )


class StepRef(ApiModel):
    """A step: its number and name."""

    number: int = Field(description="1-based step number.")
    name: str = Field(description="Step name.")
    started_at: str | None = Field(default=None, description="When it started (RFC 3339).")


class Failure(ApiModel):
    """Evidence of a lost runner pod."""

    reason: str = Field(
        description="PodDeleted, Evicted, OOMKilled, NodeLost, Unschedulable, ImagePullError, "
        "Unresponsive, RunnerCrashed, RunnerError or DeadlineExceeded."
    )
    message: str = Field(default="", description="What happened.")
    pod_name: str | None = Field(default=None, description="The pod that was lost.")
    exit_code: int | None = Field(default=None, description="Its runner's exit code, if known.")
    at: str | None = Field(default=None, description="When it was noticed (RFC 3339).")
    log_tail: str | None = Field(default=None, description="The end of the pod's log.")


class RunError(ApiModel):
    """Why the run failed or stopped."""

    type: str = Field(description="Exception type.")
    message: str = Field(default="", description="Exception message.")


class Pinned(ApiModel):
    """What the run runs, fixed when it started."""

    workflow: str = Field(description="The Workflow the run started from.")
    image: str = Field(description="Image every pod of this run uses.")
    entrypoint: str = Field(description="module:function every pod of this run runs.")
    version: str | None = Field(default=None, description="Recorded application version.")


class WorkflowRunStatus(ApiModel):
    """What the operator observed of the run."""

    phase: str = Field(
        default="Pending",
        description="Pending, Running, Sleeping, Waiting, "
        "Cancelling, Cancelled, Terminated, Succeeded or Failed.",
    )
    run_id: str | None = Field(
        default=None, description="The run's id in Postgres (stepstone CLI)."
    )
    attempt: int = Field(default=0, description="Pod attempt; also the fencing epoch.")
    recoveries: int = Field(default=0, description="Pod losses recovered so far.")
    current_step: StepRef | None = Field(default=None, description="The step in flight.")
    completed_steps: int = Field(default=0, description="Steps recorded so far.")
    pod_name: str | None = Field(default=None, description="The current runner pod.")
    last_failure: Failure | None = Field(default=None, description="The last pod loss.")
    result: Any = Field(
        default=None,
        description="The workflow's result when small; otherwise see resultTruncated.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    result_truncated: bool | None = Field(
        default=None,
        description="True when the result is too large for status (read it with "
        "`stepstone status`).",
    )
    error: RunError | None = Field(default=None, description="Why the run failed or stopped.")
    pinned: Pinned | None = Field(default=None, description="What this run runs, fixed at start.")
    started_at: str | None = Field(default=None, description="When the run started.")
    finished_at: str | None = Field(default=None, description="When the run finished.")
    next_attempt_at: str | None = Field(
        default=None, description="When the next pod is created, during a recovery backoff."
    )
    wake_at: str | None = Field(default=None, description="Sleeping: when it wakes.")
    waiting_for: str | None = Field(default=None, description="Waiting: the event's name.")
    observed_state: str | None = Field(default=None, description="The spec.state acted upon.")
    observed_retry: int | None = Field(default=None, description="The spec.retry acted upon.")
    forks: list[str] = Field(default_factory=list, description="Forks created from spec.forks.")
    observed_generation: int | None = Field(default=None, description="Last generation seen.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Accepted and Succeeded (Tekton style)."
    )
