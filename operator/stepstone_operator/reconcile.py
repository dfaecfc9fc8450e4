"""One reconcile of one WorkflowRun: observe, decide, act, write status, post events.

This is the only place where decisions meet I/O: the store (Postgres) for the run's row, the
``Kube`` client for pods and status, the cache for what the watches saw.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepstone.errors import InvalidTransitionError, RunConflictError
from stepstone.store import RunStatus, Store
from stepstone_operator import pods as podspec
from stepstone_operator.actions import (
    DATABASE_ACTIONS,
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
from stepstone_operator.api import API_VERSION, Phase
from stepstone_operator.cache import Cache, Key
from stepstone_operator.config import OperatorConfig
from stepstone_operator.decide import ForkSource, Observed, Plan, decide, pinned_spec
from stepstone_operator.kube import Kube, KubeError
from stepstone_operator.metrics import Metrics
from stepstone_operator.status import PROGRESS_FIELDS, changed_fields, merge_patch, render
from stepstone_operator.views import (
    RUN_ID_ANNOTATION,
    NodeView,
    PodView,
    RunView,
    effective_run_id,
    key_for_run_id,
    parse_workflow,
)

log = logging.getLogger("stepstone.operator")

MAX_ROUNDS = 8
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Throttle:
    """A token bucket for progress-only status patches: phase changes always go through,
    step-by-step progress of many runs cannot flood the API server."""

    qps: float
    burst: float
    tokens: float = 0.0
    at: float = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.qps)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Reconciler:
    def __init__(
        self,
        *,
        kube: Kube,
        store: Store,
        cache: Cache,
        config: OperatorConfig,
        metrics: Metrics,
        clock: Clock = utcnow,
    ) -> None:
        self.kube = kube
        self.store = store
        self.cache = cache
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._throttle = _Throttle(config.status_patch_qps, config.status_patch_qps * 2)
        self._last_progress: dict[Key, float] = {}

    # -- observe ------------------------------------------------------------------------
    def observe(self, key: Key) -> Observed | None:
        body = self.cache.run(key)
        if body is None:
            return None
        run = RunView.from_body(body)
        db, children = self.store.run_family(run.run_id)
        workflow = workflow_error = None
        fork_source = None
        existing: set[str] = set()
        taken: set[str] = set()
        if run.spec is not None:
            if db is None:
                wf_body = self.cache.workflow((run.namespace, run.spec.workflow_ref.name))
                if wf_body is not None:
                    workflow, workflow_error = parse_workflow(wf_body)
                if run.spec.fork_from is not None:
                    fork_source = self._fork_source(run.namespace, run.spec.fork_from.run)
            for request in run.spec.forks:
                other = self.cache.run((run.namespace, request.name))
                if other is None:
                    continue
                source = ((other.get("spec") or {}).get("forkFrom") or {}).get("run")
                (existing if source == run.name else taken).add(request.name)
        child_states: dict[str, str] = {}
        for child in children:
            child_key = key_for_run_id(child.run_id)
            child_body = self.cache.run(child_key) if child_key else None
            if child_key is not None and child_body is not None:
                spec = child_body.get("spec") or {}
                child_states[child_key[1]] = spec.get("state", "Running")
        pods = tuple(PodView.from_body(p) for p in self.cache.pods(run.uid))
        nodes = {}
        for pod in pods:
            if pod.node and (node := self.cache.node(pod.node)) is not None:
                nodes[pod.node] = NodeView.from_body(node)
        return Observed(
            now=self.clock(),
            run=run,
            workflow=workflow,
            workflow_error=workflow_error,
            db=db,
            pods=pods,
            nodes=nodes,
            fork_source=fork_source,
            existing_forks=frozenset(existing),
            taken_fork_names=frozenset(taken),
            children=tuple(children),
            child_states=child_states,
        )

    def _fork_source(self, namespace: str, name: str) -> ForkSource:
        body = self.cache.run((namespace, name))
        if body is None:
            return ForkSource(name, None, None)
        run_id = effective_run_id(body)
        forks_from = ((body.get("spec") or {}).get("forkFrom") or {}).get("run")
        return ForkSource(name, run_id, self.store.get_run(run_id), forks_from)

    # -- reconcile ----------------------------------------------------------------------
    def reconcile(self, key: Key) -> float | None:
        """Bring one run closer to its spec; returns when to look again (None: on events)."""
        started = time.monotonic()
        try:
            observed = self.observe(key)
            if observed is None:
                return None
            plan = decide(observed)
            for _ in range(MAX_ROUNDS):
                for action in plan.actions:
                    self._act(observed, plan, action)
                if not plan.again:
                    break
                observed = self.observe(key)
                if observed is None:
                    return None
                plan = decide(observed)
            return self._write_status(key, observed, plan)
        finally:
            self.metrics.reconcile_seconds.observe(time.monotonic() - started)

    def forget(self, key: Key) -> None:
        """A WorkflowRun is gone: drop what was kept about it."""
        self._last_progress.pop(key, None)

    def _write_status(self, key: Key, o: Observed, plan: Plan) -> float | None:
        old = o.run.status
        new = render(o, plan)
        changed = changed_fields(old, new)
        if not changed:
            return plan.requeue_after
        requeue = plan.requeue_after
        progress_only = changed <= PROGRESS_FIELDS
        if progress_only:
            last = self._last_progress.get(key, 0.0)
            wait = self.config.status_progress_min_interval - (time.monotonic() - last)
            if wait > 0 or not self._throttle.take():
                wait = max(wait, 0.2)
                return wait if requeue is None else min(requeue, wait)
        self.kube.patch_run_status(o.run.namespace, o.run.name, merge_patch(old, new))
        self.metrics.status_patches.labels("progress" if progress_only else "state").inc()
        self._last_progress[key] = time.monotonic()
        body = self.cache.run(key)
        if body is not None:
            self.cache.put_run({**body, "status": new})
        if old.get("phase") != new["phase"]:
            self._phase_event(o, str(old.get("phase") or ""), new)
        return requeue

    def _phase_event(self, o: Observed, old: str, new: dict[str, Any]) -> None:
        phase = new["phase"]
        error = new.get("error") or {}
        message = {
            Phase.SUCCEEDED.value: f"succeeded after {new.get('completedSteps', 0)} steps",
            Phase.FAILED.value: f"{error.get('type', '')}: {error.get('message', '')}",
        }.get(phase, f"{old or 'new'} -> {phase}")
        self._event(o, phase, message, warning=phase == Phase.FAILED.value)
        log.info("phase changed", extra={"run": o.run.run_id, "from": old, "to": phase})

    def _event(self, o: Observed, reason: str, message: str, *, warning: bool = False) -> None:
        involved = {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {"name": o.run.name, "namespace": o.run.namespace, "uid": o.run.uid},
        }
        self.kube.post_event(involved, reason=reason, message=message, warning=warning)

    # -- actions ------------------------------------------------------------------------
    def _act(self, o: Observed, plan: Plan, action: Action) -> None:
        run = o.run
        extra = {"run": run.run_id, "action": type(action).__name__}
        if isinstance(action, DATABASE_ACTIONS):
            log.info("action", extra={**extra, "detail": _describe(action)})
        match action:
            case CreateRun(workflow=workflow, spec=spec):
                created, _ = self.store.create_run(
                    run_id=run.run_id,
                    workflow=workflow,
                    entrypoint=spec.entrypoint,
                    version=spec.version or spec.image,
                    input_json=json.dumps(run.spec.input if run.spec else {}),
                    pinned_json=_pinned(o, workflow, spec),
                )
                if created:
                    self._event(
                        o,
                        "Started",
                        f"run {run.run_id} of Workflow {workflow} "
                        f"({spec.entrypoint}, image {spec.image})",
                    )
            case ForkRun(source_run_id=source, from_step=step, workflow=workflow, spec=spec):
                try:
                    self.store.fork(
                        source_id=source,
                        new_run_id=run.run_id,
                        from_step=step,
                        workflow=workflow,
                        entrypoint=spec.entrypoint,
                        version=spec.version or spec.image,
                        pinned_json=_pinned(o, workflow, spec),
                    )
                except (InvalidTransitionError, RunConflictError) as exc:
                    plan.again = False
                    plan.accepted = (False, "InvalidFork", str(exc))
                    plan.early_failure = {"type": "InvalidFork", "message": str(exc)}
                    return
                self._event(
                    o, "Forked", f"fork of {source} from step {step}: steps 1-{step - 1} reused"
                )
            case RequestCancel():
                self.store.request_cancel(run.run_id)
                self._event(
                    o,
                    "Cancelling",
                    "cancel requested: the run stops at its next step "
                    "boundary; the running step receives Cancelled",
                )
            case CompleteCancel():
                self.store.complete_cancel(run.run_id)
            case Terminate():
                self.store.terminate(run.run_id)
            case Resume(why=why):
                resumed = self.store.resume(run.run_id)
                self._event(o, "Resumed", f"{why}; continuing after step {resumed.completed_steps}")
            case RecordLoss(loss=loss):
                self._record_loss(o, loss)
            case FailRun(reason=reason, message=message):
                self.store.set_status(
                    run.run_id,
                    RunStatus.FAILED,
                    bump_epoch=True,
                    error={"type": reason, "message": message},
                )
            case LaunchPod(expected_epoch=expected):
                self._launch(o, expected)
            case DeletePod(name=name, grace_seconds=grace, why=why):
                self.kube.delete_pod(run.namespace, name, grace)
                log.info("pod deleted", extra={**extra, "pod": name, "why": why})
            case CreateFork(request=request):
                self._create_fork(o, request)
            case CreateChild(run_id=child_id, name=name, entrypoint=entrypoint):
                self._create_child(o, child_id, name, entrypoint)
            case PatchChildState(name=name, state=state):
                self.kube.patch_run_spec(run.namespace, name, {"state": state})
                self._event(o, "ChildSteered", f"child {name}: state {state}, as its parent")
            case DeleteRunObject(why=why):
                self.kube.delete_run(run.namespace, run.name)
                log.info("WorkflowRun deleted", extra={**extra, "why": why})

    def _record_loss(self, o: Observed, loss: Any) -> None:
        tail = None
        if loss.pod_name and any(p.name == loss.pod_name for p in o.pods):
            tail = self.kube.log_tail(o.run.namespace, loss.pod_name, self.config.log_tail_lines)
        failure = {
            "reason": loss.reason,
            "message": loss.message,
            "podName": loss.pod_name,
            "exitCode": loss.exit_code,
            "at": o.now.isoformat(),
            "logTail": tail,
        }
        self.store.record_failure(o.run.run_id, failure, count_recovery=True)
        self.metrics.recoveries.labels(loss.reason).inc()
        self._event(o, "PodLost", f"{loss.reason}: {loss.message}", warning=True)
        log.warning(
            "runner pod lost",
            extra={
                "run": o.run.run_id,
                "reason": loss.reason,
                "pod": loss.pod_name,
                "detail": loss.message,
            },
        )

    def _launch(self, o: Observed, expected: int) -> None:
        run = o.run
        db = o.db
        assert db is not None
        # The cache may lag just after a start: ask the API server before raising the epoch.
        for body in self.kube.run_pods(run.namespace, run.uid):
            self.cache.remember_pod(body)
            pod = PodView.from_body(body)
            if pod.attempt == db.epoch and not pod.deleting and not pod.finished:
                log.info("pod of the current attempt exists", extra={"pod": pod.name})
                return
        last = db.last_failure or {}
        if last.get("reason") == "PodCreateFailed" and last.get("podName") == podspec.pod_name(
            run.name, db.epoch
        ):
            epoch: int | None = db.epoch  # its pod never existed: no runner to fence; reuse it
        else:
            epoch = self.store.advance_epoch(run.run_id, expected)
        if epoch is None:
            return  # someone else moved the epoch; the next reconcile sees it
        pinned = pinned_spec(db)
        assert pinned is not None  # decide() only launches pinned runs
        workflow, spec = pinned
        manifest = podspec.runner_pod(
            namespace=run.namespace,
            run=run.name,
            run_uid=run.uid,
            run_id=run.run_id,
            attempt=epoch,
            workflow=str(workflow),
            spec=spec,
            heartbeat_seconds=self.config.runner_heartbeat_seconds,
            log_format=self.config.runner_log_format,
            service_account=self.config.runner_service_account,
        )
        name = manifest["metadata"]["name"]
        try:
            created = self.kube.create_pod(run.namespace, manifest)
        except KubeError as exc:
            if exc.status in (400, 422):
                # invalid for good (a bad toleration, say): fail the run, saying why
                message = f"the API server refused runner pod {name}: {exc}"
                self.store.set_status(
                    run.run_id,
                    RunStatus.FAILED,
                    bump_epoch=True,
                    error={"type": "PodRejected", "message": message[:2000]},
                )
                self._event(o, "PodRejected", message[:1000], warning=True)
                return
            self.store.record_failure(
                run.run_id,
                {
                    "reason": "PodCreateFailed",
                    "message": str(exc)[:1000],
                    "podName": name,
                    "at": o.now.isoformat(),
                },
                count_recovery=False,
            )
            self._event(o, "PodCreateFailed", str(exc)[:500], warning=True)
            raise
        self.cache.remember_pod(created)
        self.metrics.pods_created.inc()
        self._event(o, "PodCreated", f"runner pod {manifest['metadata']['name']} (attempt {epoch})")
        log.info(
            "pod created",
            extra={"run": run.run_id, "pod": manifest["metadata"]["name"], "attempt": epoch},
        )

    def _create_child(self, o: Observed, child_id: str, name: str, entrypoint: str) -> None:
        """The parent's runner created the child's row; pin it to the parent's Workflow (the
        same image, the child's entrypoint) and give it a WorkflowRun owned by the parent."""
        run, db = o.run, o.db
        assert db is not None
        pinned = dict(db.pinned or {})
        spec = dict(pinned.get("spec") or {})
        spec["entrypoint"] = entrypoint
        self.store.set_pinned(
            child_id,
            json.dumps(
                {
                    **pinned,
                    "spec": spec,
                    "namespace": run.namespace,
                    "name": name,
                    "uid": None,
                }
            ),
        )
        body = {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {
                "name": name,
                "namespace": run.namespace,
                "labels": {"stepstone.io/parent": run.name},
                "annotations": {RUN_ID_ANNOTATION: child_id},
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "WorkflowRun",
                        "name": run.name,
                        "uid": run.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"workflowRef": {"name": str(pinned.get("workflow", ""))}},
        }
        created = self.kube.create_run(run.namespace, body)
        if created is not None:
            self.cache.put_run(created)
            self._event(o, "ChildCreated", f"child WorkflowRun {name} runs {entrypoint}")

    def _create_fork(self, o: Observed, request: Any) -> None:
        run = o.run
        assert run.spec is not None
        ref = request.workflow_ref.name if request.workflow_ref else run.spec.workflow_ref.name
        body = {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {
                "name": request.name,
                "namespace": run.namespace,
                "labels": {"stepstone.io/forked-from": run.name},
            },
            "spec": {
                "workflowRef": {"name": ref},
                "forkFrom": {"run": run.name, "step": request.from_step},
                "input": run.spec.input or {},
            },
        }
        created = self.kube.create_run(run.namespace, body)
        if created is not None:
            self.cache.put_run(created)
            self._event(
                o,
                "ForkCreated",
                f"WorkflowRun {request.name} forks this run from step {request.from_step}",
            )


def _pinned(o: Observed, workflow: str, spec: Any) -> str:
    return json.dumps(
        {
            "workflow": workflow,
            "spec": spec.wire(),
            "namespace": o.run.namespace,
            "name": o.run.name,
            "uid": o.run.uid,
        }
    )


def _describe(action: Action) -> dict[str, Any]:
    fields = getattr(action, "__dataclass_fields__", {})
    return {k: str(getattr(action, k))[:200] for k in fields if k != "spec"}
