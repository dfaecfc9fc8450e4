"""Builders for the operator's pure-code tests: views and records with sensible defaults."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stepstone.store.records import RunRecord, RunStatus
from stepstone_operator.api import WorkflowRunSpec, WorkflowSpec
from stepstone_operator.decide import Observed
from stepstone_operator.views import NodeView, PodView, RunView, Terminated

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
SPEC = WorkflowSpec(image="img:1", entrypoint="shop.workflows:order_pipeline")


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def run_view(status: dict[str, Any] | None = None, **spec: Any) -> RunView:
    return RunView(
        namespace="ns",
        name="order-42",
        uid="0123456789abcdef",
        generation=1,
        deleting=False,
        created_at=ago(60),
        spec=WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, **spec}),
        spec_error=None,
        status=status or {},
        run_id="ns/order-42@01234567",
    )


def db(status: RunStatus = RunStatus.RUNNING, **changes: Any) -> RunRecord:
    base = RunRecord(
        run_id="ns/order-42@01234567",
        workflow="wf",
        entrypoint=SPEC.entrypoint,
        version="img:1",
        input={},
        status=status,
        epoch=1,
        cancel_requested_at=None,
        output=None,
        error=None,
        forked_from=None,
        fork_step=None,
        parent_run_id=None,
        parent_step=None,
        created_at=ago(60),
        updated_at=ago(1),
        started_at=ago(50),
        finished_at=None,
        runner="order-42-1",
        heartbeat_at=ago(1),
        current_step=3,
        current_step_name="charge_card",
        current_step_started_at=ago(2),
        completed_steps=2,
        wake_at=None,
        waiting_for=None,
        recoveries=0,
        last_failure=None,
        pinned={"workflow": "wf", "spec": SPEC.wire()},
    )
    return replace(base, **changes)


def pod(attempt: int = 1, **changes: Any) -> PodView:
    base = PodView(
        name=f"order-42-{attempt}",
        uid=f"uid-{attempt}",
        attempt=attempt,
        phase="Running",
        created_at=ago(40),
        deleting=False,
        disruption=None,
        node="node-1",
        unschedulable=None,
        started_at=ago(39),
        waiting_reason=None,
        waiting_message=None,
        terminated=None,
    )
    return replace(base, **changes)


def ended(code: int, reason: str | None = "Error") -> Terminated:
    return Terminated(exit_code=code, reason=reason, message=None, finished_at=ago(1))


def observed(
    run: RunView | None = None,
    record: RunRecord | None = None,
    pods: tuple[PodView, ...] = (),
    nodes: dict[str, NodeView] | None = None,
    workflow: WorkflowSpec | None = SPEC,
    **kw: Any,
) -> Observed:
    return Observed(
        now=NOW,
        run=run or run_view(),
        workflow=workflow,
        workflow_error=None,
        db=record,
        pods=pods,
        nodes=nodes or {},
        **kw,
    )
