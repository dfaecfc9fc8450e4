"""The WorkflowEvent resource: an event for a run, sent with kubectl alone.

Each event is an object of its own, so concurrent senders never overwrite each other, RBAC can
let approvers create events without letting them edit runs, and the object is the audit trail
(its status says when it was delivered and which step consumed it).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from stepstone_operator.api._base import ApiModel, Condition, LocalObjectReference


class WorkflowEventSpec(ApiModel):
    """Which run gets which event. Immutable."""

    run_ref: LocalObjectReference = Field(description="The WorkflowRun, in the same namespace.")
    event: str = Field(
        min_length=1,
        max_length=253,
        description="The event's name, as the workflow's wait_for_event(name) expects it.",
    )
    payload: dict[str, Any] | None = Field(
        default=None,
        description="The event's payload, a JSON object (what wait_for_event returns).",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    key: str | None = Field(
        default=None,
        max_length=253,
        description="A deduplication key: events with the same key reach the run once "
        "(default: this object's uid).",
    )


class WorkflowEventStatus(ApiModel):
    """Whether the event reached the run, and which step took it."""

    delivered: bool = Field(default=False, description="Stored for the run in Postgres.")
    delivered_at: str | None = Field(default=None, description="When it was stored.")
    run_id: str | None = Field(default=None, description="The run's id in Postgres.")
    consumed_by_step: int | None = Field(
        default=None, description="The wait_for_event step that received it."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Delivered.")
