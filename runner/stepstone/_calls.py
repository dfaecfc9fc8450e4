"""What happens when workflow code calls a step, ``sleep`` or ``wait_for_event``.

Each call takes the next step number. If the run has a record for that number, the call is a
replay: the names are compared and the recorded outcome returned (or its error raised) without
running anything. Otherwise it is a step boundary (cancel, fencing and parking are checked),
then the step runs with its retries and timeout, and its outcome is recorded in one round trip
before the workflow sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stepstone import _crash, _serde
from stepstone._state import RunState, StepEvent, _in_step, current
from stepstone.errors import (
    Cancelled,
    EventTimeoutError,
    Fenced,
    NonDeterminismError,
    SerializationError,
    StepError,
    StepstoneError,
    StepTimeoutError,
)
from stepstone.store import RunStatus, StepKind, StepRecord, StepStatus

log = logging.getLogger("stepstone.runner")


@dataclass(frozen=True)
class StepOptions:
    """How a step is retried and bounded. Delays are seconds."""

    name: str
    retries: int = 0
    backoff: float = 1.0
    backoff_factor: float = 2.0
    max_backoff: float = 60.0
    timeout: float | None = None
    non_retryable: tuple[type[BaseException], ...] = field(default=())


@dataclass(frozen=True)
class RunInfo:
    """Where the calling code is: see ``current_run()``."""

    run_id: str
    workflow: str
    attempt: int
    """The run's attempt (fencing epoch): 1 for the first pod, higher after each relaunch."""
    step: int | None
    """The step being executed, or None between steps."""
    step_name: str | None
    step_attempt: int | None
    """The try of this step within this attempt (1, then 2... on retries)."""

    @property
    def idempotency_key(self) -> str:
        """Stable for a step across retries, relaunches and replays: give it to outside APIs
        (payment providers, ticket systems) so a step that runs twice acts once."""
        if self.step is None:
            raise StepstoneError("idempotency_key is only defined inside a step")
        return f"{self.run_id}/{self.step}"


_current_step: contextvars.ContextVar[tuple[int, str, int] | None] = contextvars.ContextVar(
    "stepstone_step", default=None
)


def current_run() -> RunInfo | None:
    """The run, attempt and step of the calling code, or None outside any workflow."""
    state = current()
    if state is None:
        return None
    now = _current_step.get()
    return RunInfo(
        run_id=state.run_id,
        workflow=state.workflow,
        attempt=state.epoch,
        step=now[0] if now else None,
        step_name=now[1] if now else None,
        step_attempt=now[2] if now else None,
    )


def heartbeat() -> None:
    """Call from long steps: raises ``Cancelled`` there once the run is cancelled (and
    ``Fenced`` if this runner was superseded). It costs no database round trip."""
    state = current()
    if state is None:
        return
    if state.fenced.is_set():
        raise Fenced(f"run {state.run_id}: attempt {state.epoch} is no longer current")
    step = _current_step.get()
    state.deliver_cancel(f"inside step {step[0]}" if step else "at a heartbeat")


# -- replay --------------------------------------------------------------------------------
def _replayed(rec: StepRecord) -> Any:
    if rec.status == StepStatus.SUCCEEDED:
        return rec.output
    raise _serde.rebuild_error(rec.error or {})


def _retry_delay(opts: StepOptions, exc: BaseException, attempt: int) -> float | None:
    if attempt > opts.retries:
        return None
    if isinstance(exc, SerializationError | NonDeterminismError):
        return None
    if isinstance(exc, StepError):
        if exc.non_retryable:
            return None
        if exc.next_retry_delay is not None:
            return max(0.0, exc.next_retry_delay)
    if opts.non_retryable and isinstance(exc, opts.non_retryable):
        return None
    return float(min(opts.backoff * opts.backoff_factor ** (attempt - 1), opts.max_backoff))


def _finish_success(
    state: RunState, n: int, opts: StepOptions, result: Any, started: float, attempt: int
) -> Any:
    try:
        encoded = _serde.dumps(result, what=lambda: f"the output of step {n} {opts.name!r}")
    except SerializationError as exc:
        _record_failure(state, n, opts, exc, started, attempt)
        raise
    _crash.hit(state.options.crash_points, "after_step_body", n)
    state.record(
        n,
        opts.name,
        StepKind.STEP,
        status=StepStatus.SUCCEEDED,
        output_json=encoded,
        error_json=None,
        started=started,
        attempts=attempt,
    )
    if state.listened:
        state.emit(StepEvent("succeeded", n, opts.name, attempt, time.time() - started))
    return _serde.loads(encoded)


def _record_failure(
    state: RunState, n: int, opts: StepOptions, exc: BaseException, started: float, attempt: int
) -> None:
    state.record(
        n,
        opts.name,
        StepKind.STEP,
        status=StepStatus.FAILED,
        output_json=None,
        error_json=_serde.error_json(exc),
        started=started,
        attempts=attempt,
    )
    state.emit(StepEvent("failed", n, opts.name, attempt, time.time() - started, str(exc)))


# -- sync and async steps share their start and their error handling ----------------------
@dataclass
class _Replayed:
    value: Any


@dataclass(frozen=True)
class _Call:
    state: RunState
    n: int
    started: float


def _start_call(opts: StepOptions) -> _Call | _Replayed | None:
    """None: a plain call (outside a workflow, or inside another step); a replayed outcome;
    or a step to execute, past its boundary."""
    state = current()
    if state is None or _in_step.get():
        return None
    n = state.take_step()
    rec = state.replay(n, opts.name, StepKind.STEP)
    if rec is not None:
        return _Replayed(_replayed(rec))
    state.boundary(n)
    return _Call(state, n, time.time())


def _retry_or_record(call: _Call, opts: StepOptions, exc: Exception, attempt: int) -> float | None:
    """The delay before the next try, or None once the failure is recorded (re-raise it)."""
    delay = _retry_delay(opts, exc, attempt)
    if delay is None:
        _record_failure(call.state, call.n, opts, exc, call.started, attempt)
        return None
    call.state.emit(StepEvent("retrying", call.n, opts.name, attempt, None, str(exc)))
    return delay


def call_step(
    opts: StepOptions, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    call = _start_call(opts)
    if call is None:
        return fn(*args, **kwargs)
    if isinstance(call, _Replayed):
        return call.value
    attempt = 0
    while True:
        attempt += 1
        try:
            result = _run_sync_body(
                call.state, call.n, opts, attempt, call.started, fn, args, kwargs
            )
        except Exception as exc:
            delay = _retry_or_record(call, opts, exc, attempt)
            if delay is None:
                raise
            call.state.wait(delay)
            continue
        return _finish_success(call.state, call.n, opts, result, call.started, attempt)


def _run_sync_body(
    state: RunState,
    n: int,
    opts: StepOptions,
    attempt: int,
    started: float,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    state.enter(n, opts.name, started, attempt)
    if state.listened:
        state.emit(StepEvent("started", n, opts.name, attempt))
    step_token = _current_step.set((n, opts.name, attempt))
    in_token = _in_step.set(True)
    state.sync_body = n
    try:
        if opts.timeout is None:
            return fn(*args, **kwargs)
        with _timeout(opts.timeout, n, opts.name):
            return fn(*args, **kwargs)
    finally:
        state.sync_body = None
        _in_step.reset(in_token)
        _current_step.reset(step_token)
        state.leave(n)


_timeout_warned = False


@contextmanager
def _timeout(seconds: float, n: int, name: str) -> Iterator[None]:
    """Bound a sync step with SIGALRM (main thread only; elsewhere the bound is not enforced
    and a warning says so once)."""
    if threading.current_thread() is not threading.main_thread():
        global _timeout_warned  # noqa: PLW0603 - one warning per process is enough
        if not _timeout_warned:
            _timeout_warned = True
            log.warning(
                "step timeouts are not enforced outside the main thread",
                extra={"step": n, "name": name, "timeout": seconds},
            )
        yield
        return
    armed = True

    def on_alarm(signum: int, frame: object) -> None:
        if armed:
            raise StepTimeoutError(f"step {n} {name!r} timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- async steps ---------------------------------------------------------------------------
async def call_async_step(
    opts: StepOptions,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    call = _start_call(opts)
    if call is None:
        return await fn(*args, **kwargs)
    if isinstance(call, _Replayed):
        return call.value
    state, n = call.state, call.n
    attempt = 0
    while True:
        attempt += 1
        state.enter(n, opts.name, call.started, attempt)
        if state.listened:
            state.emit(StepEvent("started", n, opts.name, attempt))
        step_token = _current_step.set((n, opts.name, attempt))
        in_token = _in_step.set(True)
        try:
            result = await _cancellable(state, n, fn(*args, **kwargs), opts.timeout, opts.name)
        except Exception as exc:
            delay = _retry_or_record(call, opts, exc, attempt)
            if delay is None:
                raise
            await state.wait_async(delay)
            continue
        finally:
            _in_step.reset(in_token)
            _current_step.reset(step_token)
            state.leave(n)
        return _finish_success(state, n, opts, result, call.started, attempt)


async def _cancellable(
    state: RunState, n: int, coro: Awaitable[Any], timeout: float | None, name: str
) -> Any:
    """Await a step body; a cancel request cancels it (the body sees asyncio.CancelledError,
    as in asyncio and Temporal), then ``Cancelled`` is raised into the workflow."""
    task = asyncio.ensure_future(asyncio.wait_for(coro, timeout) if timeout else coro)
    waker = state.async_waker()
    while True:
        if state.fenced.is_set() or (state.cancel.is_set() and not state.cancel_delivered):
            break
        waiter = asyncio.ensure_future(waker.wait())
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        waker.clear()
        if task in done:
            try:
                return task.result()
            except TimeoutError as exc:
                raise StepTimeoutError(f"step {n} {name!r} timed out after {timeout:g} s") from exc
    task.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task  # the body's own ending does not matter any more
    state.interrupt_point()
    raise Cancelled(f"run {state.run_id} was cancelled; step {n} interrupted")  # pragma: no cover


# -- sleep ---------------------------------------------------------------------------------
def _sleep_wake_at(state: RunState, seconds: float) -> float:
    n = state.take_step()
    rec = state.replay(n, "sleep", StepKind.SLEEP)
    if rec is not None:
        return float(rec.output["wake_at"])
    state.boundary(n)
    now = time.time()
    wake_at = now + max(0.0, seconds)
    state.record(
        n,
        "sleep",
        StepKind.SLEEP,
        status=StepStatus.SUCCEEDED,
        output_json=_serde.dumps({"wake_at": wake_at, "seconds": seconds}, what="sleep"),
        error_json=None,
        started=now,
        attempts=1,
    )
    state.emit(StepEvent("sleeping", n, "sleep", 1, seconds))
    return wake_at


def _park_if_long(
    state: RunState,
    remaining: float,
    status: RunStatus,
    wake_at: float | None,
    waiting_for: str | None,
) -> None:
    limit = state.options.suspend_after
    if limit is not None and remaining > limit:
        state.suspend(status, wake_at, waiting_for)


def sleep(seconds: float) -> None:
    """Durable sleep: the wake time is recorded, so a relaunch sleeps only what is left.
    Long sleeps in a pod park the run and free the pod (see ``ExecuteOptions.suspend_after``)."""
    state = current()
    if state is None or _in_step.get():
        time.sleep(seconds)
        return
    wake_at = _sleep_wake_at(state, seconds)
    while (remaining := wake_at - time.time()) > 0:
        _park_if_long(state, remaining, RunStatus.SLEEPING, wake_at, None)
        state.wait(remaining)


async def sleep_async(seconds: float) -> None:
    """``sleep`` for ``async def`` workflows."""
    state = current()
    if state is None or _in_step.get():
        await asyncio.sleep(seconds)
        return
    wake_at = _sleep_wake_at(state, seconds)
    while (remaining := wake_at - time.time()) > 0:
        _park_if_long(state, remaining, RunStatus.SLEEPING, wake_at, None)
        await state.wait_async(remaining)


# -- events --------------------------------------------------------------------------------
class _Wait:
    """One ``wait_for_event`` call's bookkeeping, shared by the sync and async forms."""

    def __init__(self, state: RunState, name: str, timeout: float | None) -> None:
        self.state = state
        self.name = name
        self.step_name = f"event:{name}"
        self.n = state.take_step()
        self.record = state.replay(self.n, self.step_name, StepKind.EVENT)
        self.timeout = timeout
        self.poll = 0.05
        self.deadline: float | None = None
        self.started = time.time()

    def start(self) -> None:
        self.state.boundary(self.n)
        wanted = None
        if self.timeout is not None:
            wanted = datetime.fromtimestamp(self.started + self.timeout, UTC)
        fixed = self.state.store.timer_deadline(self.state.run_id, self.n, wanted)
        self.deadline = fixed.timestamp() if fixed is not None else None
        self.state.emit(StepEvent("waiting", self.n, self.step_name))

    def try_take(self) -> tuple[bool, Any]:
        """One look: (True, payload) when taken; raises on timeout; (False, None) to wait."""
        state = self.state
        try:
            found, payload = state.store.consume_event(
                run_id=state.run_id,
                epoch=state.epoch,
                step=self.n,
                step_name=self.step_name,
                event_name=self.name,
                started=self.started,
                cleanup=state.cancel_delivered,
            )
        except Fenced:
            state.mark_fenced()
            raise
        if found:
            state.completed += 1
            _crash.hit(state.options.crash_points, "after_record", self.n)
            state.emit(
                StepEvent("succeeded", self.n, self.step_name, 1, time.time() - self.started)
            )
            return True, payload
        now = time.time()
        if self.deadline is not None and now >= self.deadline:
            err = EventTimeoutError(
                f"no event {self.name!r} arrived within {self.timeout:g} s (step {self.n})"
            )
            state.record(
                self.n,
                self.step_name,
                StepKind.EVENT,
                status=StepStatus.FAILED,
                output_json=None,
                error_json=_serde.error_json(err),
                started=self.started,
                attempts=1,
            )
            raise err
        remaining = self.deadline - now if self.deadline is not None else float("inf")
        _park_if_long(state, remaining, RunStatus.WAITING, self.deadline, self.name)
        return False, None

    def next_pause(self) -> float:
        pause = self.poll
        self.poll = min(self.poll * 2, self.state.options.event_poll_seconds)
        if self.deadline is not None:
            pause = min(pause, max(0.0, self.deadline - time.time()))
        return pause


def wait_for_event(name: str, timeout: float | None = None) -> Any:
    """Wait for an event sent to this run (``Client.send_event``, the CLI, or the cluster).

    Events are kept until consumed, so one sent before the wait is received; each is delivered
    exactly once. Returns its payload; raises ``EventTimeoutError`` after ``timeout`` seconds
    (the deadline is fixed when the wait first starts and survives relaunches). Long waits in
    a pod park the run and free the pod.
    """
    wait = _start_wait(name, timeout)
    if isinstance(wait, _Replayed):
        return wait.value
    while True:
        taken, payload = wait.try_take()
        if taken:
            return payload
        wait.state.wait(wait.next_pause())


async def wait_for_event_async(name: str, timeout: float | None = None) -> Any:
    """``wait_for_event`` for ``async def`` workflows."""
    wait = _start_wait(name, timeout)
    if isinstance(wait, _Replayed):
        return wait.value
    while True:
        taken, payload = wait.try_take()
        if taken:
            return payload
        await wait.state.wait_async(wait.next_pause())


def _start_wait(name: str, timeout: float | None) -> _Wait | _Replayed:
    state = current()
    if state is None:
        raise StepstoneError("wait_for_event() works only inside a running workflow")
    if _in_step.get():
        raise StepstoneError("call wait_for_event() from workflow code, not from inside a step")
    wait = _Wait(state, name, timeout)
    if wait.record is not None:
        return _Replayed(_replayed(wait.record))
    wait.start()
    return wait
