"""What should happen to this run now? A pure function of what is observed.

Level-triggered: the answer depends only on the WorkflowRun, its Postgres row, its pods, their
nodes and the clock, never on memory of earlier reconciles, so a restarted operator decides
exactly what the old one would have. Actions that change the Postgres row come back one at a
time with ``again`` set: the caller carries them out, observes again and asks again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from pydantic import ValidationError

from stepstone.store.records import RunRecord, RunStatus
from stepstone_operator.actions import (
    Action,
    CompleteCancel,
    CreateChild,
    CreateFork,
    CreateRun,
    DeletePod,
    DeleteRunObject,
    FailRun,
    ForkRun,
    LaunchPod,
    PatchChildState,
    RecordLoss,
    RequestCancel,
    Resume,
    Terminate,
)
from stepstone_operator.api import DesiredState, WorkflowSpec
from stepstone_operator.classify import Loss, classify
from stepstone_operator.views import NodeView, PodView, RunView, key_for_run_id

RESYNC_ACTIVE = 10.0
"""Even with nothing new, look at an active run this often."""


@dataclass(frozen=True)
class ForkSource:
    name: str
    run_id: str | None
    db: RunRecord | None
    forks_from: str | None = None
    """The source's own spec.forkFrom.run: a run forking its own fork never starts."""


@dataclass(frozen=True)
class Observed:
    now: datetime
    run: RunView
    workflow: WorkflowSpec | None
    workflow_error: str | None
    db: RunRecord | None
    pods: tuple[PodView, ...] = ()
    nodes: Mapping[str, NodeView] = field(default_factory=dict)
    fork_source: ForkSource | None = None
    existing_forks: frozenset[str] = frozenset()
    taken_fork_names: frozenset[str] = frozenset()
    """spec.forks names that belong to WorkflowRuns which are not forks of this run."""
    children: tuple[RunRecord, ...] = ()
    child_states: Mapping[str, str] = field(default_factory=dict)
    """spec.state of each child run's WorkflowRun that exists, by name."""


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    again: bool = False
    requeue_after: float | None = None
    accepted: tuple[bool, str, str] = (True, "Accepted", "")
    early_failure: dict[str, str] | None = None
    """A run that fails before it has a Postgres row (its input is invalid, its fork point
    does not exist): this error is its whole record."""
    next_attempt_at: datetime | None = None
    observed_state: str | None = None
    """The spec.state this reconcile has acted on (status.observedState): it only follows
    spec.state once Postgres reflects it, so a quick Cancelled-then-Running still resumes."""
    recovering: Loss | None = None
    forks_blocked: str | None = None

    def wait(self, seconds: float) -> Plan:
        self.requeue_after = (
            seconds if self.requeue_after is None else min(self.requeue_after, seconds)
        )
        return self

    def act(self, action: Action, *, again: bool = False) -> Plan:
        self.actions.append(action)
        self.again = self.again or again
        return self


def pinned_spec(db: RunRecord) -> tuple[str, WorkflowSpec] | None:
    pinned = db.pinned or {}
    try:
        return str(pinned["workflow"]), WorkflowSpec.model_validate(pinned["spec"])
    except (KeyError, TypeError, ValidationError):
        return None


def input_errors(schema: dict[str, Any] | None, value: Any) -> list[str]:
    if not schema:
        return []
    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"the Workflow's inputSchema is not a valid JSON Schema: {exc.message}"]
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(input)'}: {e.message}" for e in errors[:5]
    ]


MAX_INPUT_DEPTH = 256


def input_problem(value: Any, path: str = "spec.input", depth: int = 0) -> str | None:
    """What Postgres or a runner could not take in an input the API server accepted: a NUL
    character (jsonb refuses it) or nesting deeper than MAX_INPUT_DEPTH."""
    if depth > MAX_INPUT_DEPTH:
        return f"{path} is nested more than {MAX_INPUT_DEPTH} levels deep; flatten the input"
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path} contains a NUL character (\\u0000), which Postgres cannot store"
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, child in items:
        if "\x00" in key:
            return f"{path} has a key with a NUL character (\\u0000), which Postgres cannot store"
        found = input_problem(child, f"{path}.{key}", depth + 1)
        if found:
            return found
    return None


def decide(o: Observed) -> Plan:
    run = o.run
    if run.deleting:
        return Plan()
    if run.spec is None:
        return Plan(accepted=(False, "SpecInvalid", run.spec_error or "spec is invalid"))
    if o.db is None:
        return _start(o)
    plan = Plan(observed_state=run.spec.state.value)
    pinned = pinned_spec(o.db)
    if pinned is None:
        plan.accepted = (
            False,
            "NotPinned",
            "the run's Postgres row has no pinned Workflow; it was not started by this operator",
        )
        return plan
    _, spec = pinned
    for request in run.spec.forks:
        if request.name not in o.existing_forks and request.name not in o.taken_fork_names:
            plan.act(CreateFork(request))
    if o.taken_fork_names:
        names = ", ".join(sorted(o.taken_fork_names))
        plan.forks_blocked = (
            f"spec.forks names {names}: a WorkflowRun of that name exists "
            "and is not a fork of this run; choose another name"
        )
    _children(o, plan)
    return _steer(o, o.db, spec, plan)


def _children(o: Observed, plan: Plan) -> None:
    state = o.run.spec.state if o.run.spec else DesiredState.RUNNING
    for child in o.children:
        key = key_for_run_id(child.run_id)
        if key is None:
            continue
        name = key[1]
        current = o.child_states.get(name)
        if current is None:
            plan.act(CreateChild(child.run_id, name, child.entrypoint))
        elif (
            state in (DesiredState.CANCELLED, DesiredState.TERMINATED)
            and current == DesiredState.RUNNING.value
            and not child.status.terminal
        ):
            plan.act(PatchChildState(name, state.value))


# -- before the run has a Postgres row -------------------------------------------------------
def _start(o: Observed) -> Plan:
    run, spec = o.run, o.run.spec
    assert spec is not None
    if run.status.get("phase") == "Failed":
        # failed before it started (its input or fork point cannot change): stays failed
        error = run.status.get("error") or {}
        return Plan(
            accepted=_accepted_from_status(run.status),
            early_failure={
                "type": str(error.get("type", "Failed")),
                "message": str(error.get("message", "")),
            },
        )
    source = o.fork_source
    if spec.fork_from is not None:
        if source is None or source.run_id is None:
            return Plan(
                accepted=(
                    False,
                    "ForkSourceNotFound",
                    f"WorkflowRun {spec.fork_from.run!r} (spec.forkFrom.run) not "
                    f"found in namespace {run.namespace}",
                )
            ).wait(5)
        if source.db is None and source.forks_from == run.name:
            message = (
                f"WorkflowRun {source.name!r} is itself a fork of this run: forks "
                "cannot form a cycle"
            )
            return Plan(
                accepted=(False, "InvalidFork", message),
                early_failure={"type": "InvalidFork", "message": message},
            )
        if source.db is None:
            return Plan(
                accepted=(
                    False,
                    "ForkSourceNotStarted",
                    f"waiting for WorkflowRun {source.name!r} to start",
                )
            ).wait(2)
    ref = spec.workflow_ref.name
    if o.workflow is None:
        reason = "WorkflowInvalid" if o.workflow_error else "WorkflowNotFound"
        message = o.workflow_error or (
            f"Workflow {ref!r} not found in namespace {run.namespace}; create it or fix "
            "spec.workflowRef.name (the run starts as soon as it exists)"
        )
        return Plan(accepted=(False, reason, message)).wait(30)
    problem = input_problem(spec.input or {})
    if problem:
        return Plan(
            accepted=(False, "InputInvalid", problem),
            early_failure={"type": "InputInvalid", "message": problem},
        )
    errors = input_errors(o.workflow.input_schema, spec.input or {})
    if errors:
        message = "spec.input does not match the Workflow's inputSchema: " + "; ".join(errors)
        return Plan(
            accepted=(False, "InputInvalid", message),
            early_failure={"type": "InputInvalid", "message": message},
        )
    if spec.fork_from is not None and source is not None and source.db is not None:
        done = source.db.completed_steps
        if spec.fork_from.step > done + 1:
            if source.db.status.terminal:
                message = (
                    f"WorkflowRun {source.name!r} recorded {done} step(s); fork it from "
                    f"step 1 to {done + 1}, not {spec.fork_from.step}"
                )
                return Plan(
                    accepted=(False, "InvalidFork", message),
                    early_failure={"type": "InvalidFork", "message": message},
                )
            return Plan(
                accepted=(
                    False,
                    "ForkSourceNotReady",
                    f"waiting for {source.name!r} to record step {spec.fork_from.step - 1}",
                )
            ).wait(2)
        assert source.run_id is not None
        return Plan().act(ForkRun(source.run_id, spec.fork_from.step, ref, o.workflow), again=True)
    return Plan().act(CreateRun(ref, o.workflow), again=True)


def _accepted_from_status(status: dict[str, Any]) -> tuple[bool, str, str]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Accepted":
            return cond.get("status") == "True", cond.get("reason", ""), cond.get("message", "")
    return True, "Accepted", ""


# -- the run has a Postgres row ---------------------------------------------------------------
def _steer(o: Observed, db: RunRecord, spec: WorkflowSpec, plan: Plan) -> Plan:
    state = o.run.spec.state if o.run.spec else DesiredState.RUNNING
    if state == DesiredState.TERMINATED:
        if not db.status.terminal:
            return plan.act(Terminate(), again=True)
        return _cleanup_pods(o, plan, grace=0)
    if state == DesiredState.CANCELLED:
        return _cancel(o, db, spec, plan)
    acted = o.run.status.get("observedState")
    if acted == DesiredState.CANCELLED.value and db.cancel_requested and not db.status.terminal:
        # set back to Running while the cancel is still under way: let it finish, then resume
        plan.observed_state = acted
        return _cancel(o, db, spec, plan)
    if db.status in (RunStatus.CANCELLED, RunStatus.TERMINATED) and acted in (
        DesiredState.CANCELLED.value,
        DesiredState.TERMINATED.value,
    ):
        return plan.act(Resume(f"spec.state set back to Running from {acted}"), again=True)
    observed_retry = o.run.status.get("observedRetry")
    if (
        db.status == RunStatus.FAILED
        and observed_retry is not None
        and o.run.spec is not None
        and o.run.spec.retry > observed_retry
    ):
        return plan.act(Resume(f"spec.retry raised to {o.run.spec.retry}"), again=True)
    if db.status.terminal:
        plan = _cleanup_pods(o, plan, grace=0)
        return _ttl(o, db, plan)
    deadline = spec.active_deadline_seconds
    if deadline and db.started_at and o.now > db.started_at + timedelta(seconds=deadline):
        return plan.act(
            FailRun(
                "DeadlineExceeded",
                f"the run did not finish within activeDeadlineSeconds={deadline}",
            ),
            again=True,
        )
    return _keep_running(o, db, spec, plan)


def _cancel(o: Observed, db: RunRecord, spec: WorkflowSpec, plan: Plan) -> Plan:
    if db.status.terminal:
        return _cleanup_pods(o, plan, grace=0)
    if not db.cancel_requested or db.status != RunStatus.RUNNING:
        return plan.act(RequestCancel(), again=True)
    current = _current_pod(o, db)
    if current is None or current.finished:
        return plan.act(CompleteCancel(), again=True)
    if not current.deleting:
        plan.act(
            DeletePod(
                current.name,
                spec.cancel_grace_period_seconds,
                "cancel: SIGTERM delivers Cancelled into the running step",
            )
        )
    _delete_stale(o, db, plan)
    return plan.wait(1)


def _ttl(o: Observed, db: RunRecord, plan: Plan) -> Plan:
    ttl = o.run.spec.ttl_seconds_after_finished if o.run.spec else None
    if ttl is None or db.finished_at is None:
        return plan
    due = db.finished_at + timedelta(seconds=ttl)
    if o.now >= due:
        return plan.act(DeleteRunObject(f"ttlSecondsAfterFinished={ttl} elapsed"))
    return plan.wait((due - o.now).total_seconds())


def _cleanup_pods(o: Observed, plan: Plan, *, grace: int | None) -> Plan:
    for pod in o.pods:
        if not pod.deleting:
            plan.act(DeletePod(pod.name, grace, "the run has ended"))
    return plan


def _current_pod(o: Observed, db: RunRecord) -> PodView | None:
    for pod in o.pods:
        if pod.attempt == db.epoch:
            return pod
    return None


def _delete_stale(o: Observed, db: RunRecord, plan: Plan) -> None:
    for pod in o.pods:
        if pod.attempt != db.epoch and not pod.deleting:
            plan.act(
                DeletePod(pod.name, 0, f"attempt {pod.attempt} is superseded by attempt {db.epoch}")
            )


def _backoff(spec: WorkflowSpec, recoveries: int) -> float:
    """The first recovery is immediate; later ones wait backoffSeconds, doubling, capped."""
    if recoveries <= 1:
        return 0.0
    rec = spec.recovery
    return float(min(rec.backoff_seconds * 2 ** (recoveries - 2), rec.max_backoff_seconds))


def _keep_running(o: Observed, db: RunRecord, spec: WorkflowSpec, plan: Plan) -> Plan:
    _delete_stale(o, db, plan)
    current = _current_pod(o, db)
    recorded = (db.last_failure or {}).get("podName")

    if db.status in (RunStatus.SLEEPING, RunStatus.WAITING):
        if current is not None and not current.deleting:
            if current.finished:
                plan.act(DeletePod(current.name, 0, f"the run is {db.status}; pod released"))
            else:
                return plan.wait(1)  # the runner is still parking the run
        if db.wake_at is not None and db.wake_at > o.now:
            return plan.wait((db.wake_at - o.now).total_seconds())
        if db.wake_at is None:
            return plan.wait(RESYNC_ACTIVE * 6)  # an event flips it to pending
        return plan.act(LaunchPod(db.epoch))  # woke: start the next attempt

    if current is not None and current.name == recorded:
        return _relaunch_after_loss(o, db, spec, plan, current)

    if current is None:
        if db.status == RunStatus.PENDING or db.epoch == 0:
            return plan.act(LaunchPod(db.epoch))
        if recorded == _name(o, db.epoch):
            return _relaunch_after_loss(o, db, spec, plan, None)
        return _lost(
            o,
            db,
            spec,
            plan,
            Loss(
                "PodDeleted",
                f"pod {_name(o, db.epoch)} is gone (deleted while the operator was not watching?)",
                _name(o, db.epoch),
            ),
        )

    node = o.nodes.get(current.node or "")
    sign = db.heartbeat_at if db.runner == current.name else None
    loss = classify(current, node=node, last_sign_of_life=sign, now=o.now, recovery=spec.recovery)
    if loss is not None:
        return _lost(o, db, spec, plan, loss)
    wait = float(spec.recovery.heartbeat_timeout_seconds)
    if current.phase == "Pending":
        wait = min(wait, float(spec.recovery.start_timeout_seconds))
    return plan.wait(min(wait, RESYNC_ACTIVE))


def _name(o: Observed, attempt: int) -> str:
    return f"{o.run.name}-{attempt}"


def _lost(o: Observed, db: RunRecord, spec: WorkflowSpec, plan: Plan, loss: Loss) -> Plan:
    if db.recoveries >= spec.recovery.max_attempts:
        return plan.act(
            FailRun(
                loss.reason,
                f"{loss.message}; {db.recoveries} pod loss(es) recovered already, "
                f"recovery.maxAttempts is {spec.recovery.max_attempts}",
            ),
            again=True,
        )
    return plan.act(RecordLoss(loss), again=True)


def _relaunch_after_loss(
    o: Observed, db: RunRecord, spec: WorkflowSpec, plan: Plan, lost: PodView | None
) -> Plan:
    if lost is not None and not lost.deleting:
        plan.act(DeletePod(lost.name, 0, "lost; evidence kept"))
    failure = db.last_failure or {}
    plan.recovering = Loss(
        str(failure.get("reason", "")), str(failure.get("message", "")), failure.get("podName")
    )
    at = failure.get("at")
    noticed = datetime.fromisoformat(at) if isinstance(at, str) else o.now
    due = noticed + timedelta(seconds=_backoff(spec, db.recoveries))
    if due > o.now:
        plan.next_attempt_at = due
        return plan.wait((due - o.now).total_seconds())
    return plan.act(LaunchPod(db.epoch))
