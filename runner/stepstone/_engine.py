"""Execute one attempt of a run in this process: start it, replay, run, record the outcome.

Used by the pod entrypoint (``python -m stepstone runner``, with the attempt the operator
assigned) and by the local CLI and ``Client.execute`` (which claim a fresh attempt). Whatever
happens, the caller gets an ``Outcome`` it can turn into an exit code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stepstone import _crash, _serde
from stepstone._heartbeat import Heartbeat
from stepstone._state import ExecuteOptions, RunState, Suspended
from stepstone._workflows import WorkflowSpec, bind_input, resolve
from stepstone.contract import ExitCode
from stepstone.errors import Cancelled, Fenced, StepstoneError
from stepstone.store import RunRecord, RunStatus, Store

log = logging.getLogger("stepstone.runner")


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"
    SUSPENDED = "suspended"
    FENCED = "fenced"

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self]


_EXIT = {
    OutcomeKind.SUCCEEDED: ExitCode.SUCCEEDED,
    OutcomeKind.FAILED: ExitCode.FAILED,
    OutcomeKind.CANCELLED: ExitCode.CANCELLED,
    OutcomeKind.TERMINATED: ExitCode.FENCED,
    OutcomeKind.SUSPENDED: ExitCode.SUSPENDED,
    OutcomeKind.FENCED: ExitCode.FENCED,
}


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    run_id: str
    output: Any = None
    error: dict[str, Any] | None = None
    message: str = ""
    replayed: int = 0
    executed: int = 0


def _from_record(run: RunRecord) -> Outcome:
    kind = {
        RunStatus.SUCCEEDED: OutcomeKind.SUCCEEDED,
        RunStatus.FAILED: OutcomeKind.FAILED,
        RunStatus.CANCELLED: OutcomeKind.CANCELLED,
        RunStatus.TERMINATED: OutcomeKind.TERMINATED,
    }[run.status]
    return Outcome(kind, run.run_id, run.output, run.error, f"run already {run.status}")


def execute(
    store: Store,
    run_id: str,
    *,
    options: ExecuteOptions,
    attempt: int | None = None,
    spec: WorkflowSpec | None = None,
) -> Outcome:
    """Run ``run_id`` here until it ends, parks, or is fenced.

    ``attempt`` is the epoch the operator raised for this pod; None claims a new one (local
    execution, which fences any older runner of the run).
    """
    try:
        run = (
            store.begin_attempt(run_id, attempt, options.runner)
            if attempt is not None
            else store.claim(run_id, options.runner)
        )
    except Fenced as exc:
        log.warning("attempt is not current; exiting", extra={"run_id": run_id, "reason": str(exc)})
        return Outcome(OutcomeKind.FENCED, run_id, message=str(exc))
    if run.status.terminal:
        return _from_record(run)
    epoch = run.epoch
    try:
        spec = spec or resolve(run.entrypoint)
        args, kwargs = bind_input(spec, run.input)
    except StepstoneError as exc:
        return _end(store, run_id, epoch, OutcomeKind.FAILED, error=_serde.encode_error(exc))
    records = store.load_steps(run_id)
    state = RunState(
        store=store,
        run=run,
        epoch=epoch,
        writer=store.writer(run_id, epoch),
        records=records,
        options=options,
    )
    log.info(
        "run started",
        extra={
            "run_id": run_id,
            "workflow": spec.name,
            "attempt": epoch,
            "recorded_steps": len(records),
        },
    )
    heartbeat = Heartbeat(state).start()
    token = state.activate()
    started = time.monotonic()
    try:
        outcome = _run(state, spec, args, kwargs)
    finally:
        state.deactivate(token)
        heartbeat.stop()
        state.writer.close()
    replayed = min(len(records), state.next_step - 1)
    outcome = Outcome(
        outcome.kind,
        run_id,
        outcome.output,
        outcome.error,
        outcome.message,
        replayed=replayed,
        executed=max(0, state.completed - len(records)),
    )
    log.info(
        "run ended",
        extra={
            "run_id": run_id,
            "outcome": str(outcome.kind),
            "attempt": epoch,
            "replayed_steps": outcome.replayed,
            "executed_steps": outcome.executed,
            "seconds": round(time.monotonic() - started, 3),
            **({"reason": outcome.message} if outcome.message else {}),
        },
    )
    return outcome


def _call(spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if spec.is_async:
        return asyncio.run(spec.fn(*args, **kwargs))
    return spec.fn(*args, **kwargs)


def _run(
    state: RunState, spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Outcome:
    store, run_id, epoch = state.store, state.run_id, state.epoch
    try:
        result = _call(spec, args, kwargs)
    except Suspended as exc:
        return Outcome(OutcomeKind.SUSPENDED, run_id, message=str(exc))
    except Fenced as exc:
        return Outcome(OutcomeKind.FENCED, run_id, message=str(exc))
    except Cancelled as exc:
        return _end(
            store, run_id, epoch, OutcomeKind.CANCELLED, error=_serde.encode_error(exc), state=state
        )
    except Exception as exc:
        if state.unwinding is not None:
            return Outcome(OutcomeKind.SUSPENDED, run_id, message=str(state.unwinding))
        if state.fenced.is_set():
            return Outcome(OutcomeKind.FENCED, run_id, message=str(exc))
        failure: BaseException = state.failure or exc
        kind = OutcomeKind.CANCELLED if state.cancel_delivered else OutcomeKind.FAILED
        return _end(store, run_id, epoch, kind, error=_serde.encode_error(failure), state=state)
    if state.unwinding is not None:
        return Outcome(OutcomeKind.SUSPENDED, run_id, message=str(state.unwinding))
    if state.failure is not None:
        return _end(
            store,
            run_id,
            epoch,
            OutcomeKind.FAILED,
            error=_serde.encode_error(state.failure),
            state=state,
        )
    try:
        encoded = _serde.dumps(result, what=f"the result of workflow {spec.name!r}")
    except StepstoneError as exc:
        return _end(
            store, run_id, epoch, OutcomeKind.FAILED, error=_serde.encode_error(exc), state=state
        )
    kind = OutcomeKind.CANCELLED if state.cancel_delivered else OutcomeKind.SUCCEEDED
    _crash.hit(state.options.crash_points, "before_finish", 0)
    return _end(store, run_id, epoch, kind, output_json=encoded, state=state)


def _end(
    store: Store,
    run_id: str,
    epoch: int,
    kind: OutcomeKind,
    *,
    output_json: str | None = None,
    error: dict[str, Any] | None = None,
    state: RunState | None = None,
) -> Outcome:
    status = RunStatus(str(kind))
    try:
        store.finish(
            run_id,
            epoch,
            status=status,
            output_json=output_json,
            error_json=_serde.dumps(error, what="error") if error is not None else None,
            completed_steps=state.completed if state is not None else None,
        )
    except Fenced as exc:
        return Outcome(OutcomeKind.FENCED, run_id, message=str(exc))
    output = _serde.loads(output_json) if output_json is not None else None
    if error is not None:
        log.info(
            "workflow ended with an error",
            extra={"run_id": run_id, "outcome": str(kind), "error": error.get("message")},
        )
    return Outcome(kind, run_id, output, error)
