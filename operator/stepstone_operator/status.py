"""The WorkflowRun status a reconcile writes: a pure function of what it observed and decided.

Conditions follow metav1.Condition, Tekton style: ``Accepted`` (the Workflow exists, the input
fits its schema, the fork point exists) and ``Succeeded`` (Unknown while the run is under way,
True when it succeeded, False with the reason when it ended otherwise), so
``kubectl wait --for=condition=Succeeded`` works.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from stepstone.store.records import RunRecord, RunStatus
from stepstone_operator.api import Phase
from stepstone_operator.decide import Observed, Plan

RESULT_LIMIT = 4096
"""Results larger than this (as JSON) stay in Postgres; status says resultTruncated."""

_PHASES = {
    RunStatus.PENDING: Phase.PENDING,
    RunStatus.RUNNING: Phase.RUNNING,
    RunStatus.SLEEPING: Phase.SLEEPING,
    RunStatus.WAITING: Phase.WAITING,
    RunStatus.SUCCEEDED: Phase.SUCCEEDED,
    RunStatus.FAILED: Phase.FAILED,
    RunStatus.CANCELLED: Phase.CANCELLED,
    RunStatus.TERMINATED: Phase.TERMINATED,
}


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def phase_of(db: RunRecord | None, plan: Plan) -> Phase:
    if db is None:
        return Phase.FAILED if plan.early_failure else Phase.PENDING
    if db.cancel_requested and not db.status.terminal:
        return Phase.CANCELLING
    return _PHASES[db.status]


def _condition(
    previous: list[dict[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or iso(now),
        "observedGeneration": generation,
    }


def _succeeded(phase: Phase, db: RunRecord | None, plan: Plan) -> tuple[str, str, str]:
    error = (db.error if db else None) or plan.early_failure or {}
    message = str(error.get("message", ""))[:1000]
    if phase == Phase.SUCCEEDED:
        return "True", "Succeeded", "the workflow returned"
    if phase in (Phase.FAILED, Phase.CANCELLED, Phase.TERMINATED):
        reason = str(error.get("type", phase.value)).rsplit(".", 1)[-1]
        if phase != Phase.FAILED:
            reason = phase.value
        return "False", reason, message
    if plan.recovering is not None:
        return (
            "Unknown",
            "Recovering",
            (f"{plan.recovering.reason}: {plan.recovering.message}")[:1000],
        )
    return "Unknown", phase.value, ""


def render(o: Observed, plan: Plan) -> dict[str, Any]:
    run, db = o.run, o.db
    previous = list(run.status.get("conditions") or [])
    phase = phase_of(db, plan)
    status: dict[str, Any] = {"phase": phase.value, "runId": run.run_id}
    if db is not None:
        status.update(_from_db(o, db))
    if plan.early_failure is not None:
        status["error"] = dict(plan.early_failure)
    if plan.next_attempt_at is not None:
        status["nextAttemptAt"] = iso(plan.next_attempt_at)
    if run.spec is not None:
        status["observedState"] = plan.observed_state or run.spec.state.value
        status["observedRetry"] = run.spec.retry
        made = [f.name for f in run.spec.forks if f.name in o.existing_forks]
        if made:
            status["forks"] = made
    status["observedGeneration"] = run.generation
    ok, reason, message = plan.accepted
    succeeded = _succeeded(phase, db, plan)
    status["conditions"] = [
        _condition(
            previous, "Accepted", "True" if ok else "False", reason, message, run.generation, o.now
        ),
        _condition(previous, "Succeeded", *succeeded, run.generation, o.now),
    ]
    if plan.forks_blocked:
        status["conditions"].append(
            _condition(
                previous,
                "ForksCreated",
                "False",
                "ForkNameTaken",
                plan.forks_blocked,
                run.generation,
                o.now,
            )
        )
    return status


def _from_db(o: Observed, db: RunRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attempt": db.epoch,
        "recoveries": db.recoveries,
        "completedSteps": db.completed_steps,
    }
    if db.status == RunStatus.RUNNING and db.current_step is not None:
        out["currentStep"] = {
            "number": db.current_step,
            "name": db.current_step_name or "",
            "startedAt": iso(db.current_step_started_at),
        }
    current = next((p for p in o.pods if p.attempt == db.epoch and not p.deleting), None)
    if current is not None and not db.status.terminal:
        out["podName"] = current.name
    if db.last_failure:
        out["lastFailure"] = {k: v for k, v in db.last_failure.items() if v is not None}
    if db.status == RunStatus.SUCCEEDED:
        encoded = json.dumps(db.output)
        if len(encoded) <= RESULT_LIMIT:
            out["result"] = db.output
        else:
            out["resultTruncated"] = True
    if db.error:
        out["error"] = {
            "type": str(db.error.get("type", "Error")),
            "message": str(db.error.get("message", ""))[:2000],
        }
    pinned = db.pinned or {}
    spec = pinned.get("spec") or {}
    if spec:
        out["pinned"] = {
            "workflow": pinned.get("workflow", ""),
            "image": spec.get("image", ""),
            "entrypoint": spec.get("entrypoint", ""),
            "version": db.version,
        }
    for key, value in (
        ("startedAt", db.started_at),
        ("finishedAt", db.finished_at),
        ("wakeAt", db.wake_at if db.status.suspended else None),
    ):
        if value is not None:
            out[key] = iso(value)
    if db.waiting_for and db.status == RunStatus.WAITING:
        out["waitingFor"] = db.waiting_for
    return out


PROGRESS_FIELDS = frozenset({"currentStep", "completedSteps"})


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    keys = set(old) | set(new)
    return {k for k in keys if old.get(k) != new.get(k)}


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` at the top level (nulls remove)."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
