"""Typed views of the Kubernetes objects a reconcile reads: the run, its pods, their nodes.

Parsing happens once here, so the decision code works on plain typed data and its tests build
these views directly instead of whole API objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from stepstone.contract import CONTAINER_NAME, LABEL_ATTEMPT
from stepstone_operator.api import WorkflowRunSpec, WorkflowSpec


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_id_for(namespace: str, name: str, uid: str) -> str:
    """The run's id in Postgres: readable, and unique even when a name is reused."""
    return f"{namespace}/{name}@{uid[:8]}"


RUN_ID_ANNOTATION = "stepstone.io/run-id"
"""Set on child WorkflowRuns: their Postgres row existed (created by the parent's runner)
before the WorkflowRun, so its id is not derived from the WorkflowRun's uid."""


def effective_run_id(body: dict[str, Any]) -> str:
    meta = body["metadata"]
    annotated = (meta.get("annotations") or {}).get(RUN_ID_ANNOTATION)
    return annotated or run_id_for(meta["namespace"], meta["name"], meta["uid"])


def key_for_run_id(run_id: str) -> tuple[str, str] | None:
    namespace, slash, rest = run_id.partition("/")
    name, at, uid = rest.partition("@")
    if not slash or not at or not namespace or not name or "/" in uid:
        return None
    return namespace, name


@dataclass(frozen=True)
class Terminated:
    exit_code: int | None
    reason: str | None
    message: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class PodView:
    name: str
    uid: str
    attempt: int | None
    phase: str
    created_at: datetime | None
    deleting: bool
    disruption: str | None
    """The DisruptionTarget condition's reason (EvictionByEvictionAPI, DeletionByTaintManager,
    PreemptionByScheduler, TerminationByKubelet), when Kubernetes says why it removes the pod."""
    node: str | None
    unschedulable: str | None
    started_at: datetime | None
    waiting_reason: str | None
    waiting_message: str | None
    terminated: Terminated | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PodView:
        meta = body.get("metadata", {})
        spec = body.get("spec", {})
        status = body.get("status", {}) or {}
        attempt = meta.get("labels", {}).get(LABEL_ATTEMPT)
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        disruption = conditions.get("DisruptionTarget")
        scheduled = conditions.get("PodScheduled")
        unschedulable = None
        if scheduled and scheduled.get("status") == "False":
            unschedulable = scheduled.get("message") or scheduled.get("reason") or "unschedulable"
        state: dict[str, Any] = {}
        for cs in status.get("containerStatuses") or []:
            if cs.get("name") == CONTAINER_NAME:
                state = cs.get("state") or {}
        running = state.get("running") or {}
        waiting = state.get("waiting") or {}
        term = state.get("terminated")
        terminated = None
        if term:
            terminated = Terminated(
                exit_code=term.get("exitCode"),
                reason=term.get("reason"),
                message=term.get("message"),
                finished_at=parse_time(term.get("finishedAt")),
            )
        return cls(
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            attempt=int(attempt) if attempt and attempt.isdigit() else None,
            phase=status.get("phase") or "Pending",
            created_at=parse_time(meta.get("creationTimestamp")),
            deleting=bool(meta.get("deletionTimestamp")),
            disruption=(
                disruption.get("reason")
                if disruption and disruption.get("status") == "True"
                else None
            ),
            node=spec.get("nodeName"),
            unschedulable=unschedulable,
            started_at=parse_time(running.get("startedAt")),
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message"),
            terminated=terminated,
        )

    @property
    def finished(self) -> bool:
        return self.terminated is not None or self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: bool | None
    since: datetime | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> NodeView:
        ready = None
        since = None
        for cond in (body.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                ready = cond.get("status") == "True"
                since = parse_time(cond.get("lastTransitionTime"))
        return cls(name=body["metadata"]["name"], ready=ready, since=since)


@dataclass(frozen=True)
class RunView:
    namespace: str
    name: str
    uid: str
    generation: int
    deleting: bool
    created_at: datetime | None
    spec: WorkflowRunSpec | None
    spec_error: str | None
    status: dict[str, Any]
    run_id: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RunView:
        meta = body["metadata"]
        spec: WorkflowRunSpec | None = None
        error = None
        try:
            spec = WorkflowRunSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            error = _first_errors(exc)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 0)),
            deleting=bool(meta.get("deletionTimestamp")),
            created_at=parse_time(meta.get("creationTimestamp")),
            spec=spec,
            spec_error=error,
            status=dict(body.get("status") or {}),
            run_id=effective_run_id(body),
        )


def parse_workflow(body: dict[str, Any]) -> tuple[WorkflowSpec | None, str | None]:
    try:
        return WorkflowSpec.model_validate(body.get("spec") or {}), None
    except ValidationError as exc:
        return None, _first_errors(exc)


def _first_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
