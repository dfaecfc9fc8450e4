"""Child workflows: a workflow starts another run and, when it wants, waits for its result.

Starting a child is a step: the child's run and the parent's step record are written in one
fenced transaction, and the child's id is derived from the parent's id and the step number,
so a parent that crashes and replays finds the child it started instead of starting another.
Waiting is a step too; its outcome is the child's result (or a ``ChildRunError``).

Where children run: in a cluster the operator gives each child a WorkflowRun (owned by the
parent) and a pod of its own, and a parent waiting long parks, releasing its pod until the
child ends. Locally, a child nobody executes is executed in this process, on a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepstone import _crash, _serde
from stepstone._engine import execute
from stepstone._state import ExecuteOptions, RunState, StepEvent, Suspended, current, in_step
from stepstone._workflows import spec_for
from stepstone.contract import child_run_id
from stepstone.errors import ChildRunError, Fenced, StepstoneError
from stepstone.store import RunRecord, RunStatus, StepKind, StepStatus

_POLL = 0.2


@dataclass(frozen=True)
class ChildHandle:
    """A child run started by this workflow."""

    run_id: str

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the child (a recorded step) and return its result."""
        return wait_child(self, timeout=timeout)


def _require_workflow(what: str) -> RunState:
    state = current()
    if state is None:
        raise StepstoneError(f"{what} works only inside a running workflow")
    if in_step():
        raise StepstoneError(f"call {what} from workflow code, not from inside a step")
    return state


def start_child(workflow: str | Callable[..., Any], input: Any = None) -> ChildHandle:
    """Start ``workflow`` (a ``@workflow`` function or its ``module:function``) as a child
    run of this one, with ``input``; returns at once with a handle to wait on."""
    state = _require_workflow("start_child()")
    spec = spec_for(workflow)
    n = state.take_step()
    name = f"child:{spec.name}"
    rec = state.replay(n, name, StepKind.CHILD)
    if rec is not None:
        return ChildHandle(str(rec.output["run_id"]))
    state.boundary(n)
    child = child_run_id(state.run_id, n)
    started = time.time()
    try:
        state.store.start_child(
            parent_run_id=state.run_id,
            epoch=state.epoch,
            step=n,
            step_name=name,
            child_run_id=child,
            workflow=spec.name,
            entrypoint=spec.entrypoint,
            input_json=_serde.dumps(input, what=f"the input of child {spec.name!r}"),
            output_json=_serde.dumps({"run_id": child}, what="child"),
            started=started,
            cleanup=state.cancel_delivered,
        )
    except Fenced:
        state.mark_fenced()
        raise
    state.completed += 1
    _crash.hit(state.options.crash_points, "after_record", n)
    state.emit(StepEvent("succeeded", n, name, 1, time.time() - started))
    return ChildHandle(child)


def wait_child(handle: ChildHandle, *, timeout: float | None = None) -> Any:
    """Wait for a child run to end: its result, or ``ChildRunError`` if it did not succeed.
    Recorded as a step, so a replay returns the same outcome without waiting again."""
    state = _require_workflow("waiting for a child")
    n = state.take_step()
    name = f"child-result:{handle.run_id}"
    rec = state.replay(n, name, StepKind.CHILD)
    if rec is not None:
        if rec.status == StepStatus.SUCCEEDED:
            return rec.output
        raise _serde.rebuild_error(rec.error or {})
    state.boundary(n)
    started = time.time()
    deadline = None if timeout is None else started + timeout
    runner: threading.Thread | None = None
    while True:
        child = state.store.require_run(handle.run_id)
        if child.status.terminal:
            return _record_outcome(state, n, name, child, started)
        if runner is None and state.options.run_children_here and child.epoch == 0:
            runner = _execute_in_thread(state, handle.run_id)
        if deadline is not None and time.time() > deadline:
            raise TimeoutError(
                f"child run {handle.run_id} still {child.status} after {timeout:g} s"
            )
        limit = state.options.suspend_after
        parking = limit is not None and time.time() - started > limit
        if parking and state.store.park_for_child(
            state.run_id, state.epoch, handle.run_id, state.completed
        ):
            state.unwinding = Suspended(f"run {state.run_id} waits for {handle.run_id}")
            raise state.unwinding
        state.wait(_POLL)


def _record_outcome(state: RunState, n: int, name: str, child: RunRecord, started: float) -> Any:
    if child.status == RunStatus.SUCCEEDED:
        state.record(
            n,
            name,
            StepKind.CHILD,
            status=StepStatus.SUCCEEDED,
            output_json=_serde.dumps(child.output, what="the child's result"),
            error_json=None,
            started=started,
            attempts=1,
        )
        return child.output
    error = child.error or {}
    failure = ChildRunError(
        f"child run {child.run_id} ended {child.status}: "
        f"{error.get('type', '')}: {error.get('message', '')}".rstrip(": ")
    )
    state.record(
        n,
        name,
        StepKind.CHILD,
        status=StepStatus.FAILED,
        output_json=None,
        error_json=_serde.error_json(failure),
        started=started,
        attempts=1,
    )
    raise failure


def _execute_in_thread(state: RunState, child: str) -> threading.Thread:
    options = ExecuteOptions(
        runner=f"{state.options.runner}/child",
        heartbeat_seconds=state.options.heartbeat_seconds,
        on_event=state.options.on_event,
    )
    thread = threading.Thread(
        target=execute,
        args=(state.store, child),
        kwargs={"options": options},
        name=f"child {child}",
        daemon=True,
    )
    thread.start()
    return thread
