"""The state of one executing run, shared by the workflow thread, the heartbeat thread and
the SIGTERM handler.

Only the workflow thread changes step numbering and records; the other two only raise flags
(cancel requested, fenced) and wake whatever the workflow is waiting on. Flags are
``threading.Event``s so the workflow can wait on them; the async side is woken through the
loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stepstone import _crash
from stepstone.errors import Cancelled, Fenced, NonDeterminismError
from stepstone.store import (
    Progress,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepWriter,
    Store,
)


class Suspended(BaseException):
    """Unwinds the workflow after the run was parked (sleeping or waiting); never caught by
    user code on purpose. Step calls made while it unwinds raise it again."""


@dataclass(frozen=True)
class StepEvent:
    """A progress notice for listeners such as the CLI."""

    kind: str  # replayed started succeeded failed retrying sleeping waiting
    step: int
    name: str
    attempt: int = 1
    duration: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExecuteOptions:
    """How to execute a run in this process; built once by the entrypoint (runner or CLI)."""

    runner: str
    heartbeat_seconds: float = 1.0
    suspend_after: float | None = None
    """Sleeps and waits longer than this park the run and end execution; None waits in
    process (the local CLI)."""
    exit_on_fence: bool = False
    """In a pod, a fenced runner exits at once (from the heartbeat thread)."""
    crash_points: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    on_event: Callable[[StepEvent], None] | None = None
    event_poll_seconds: float = 0.5
    run_children_here: bool = True
    """Execute child runs nobody else executes in this process (local mode); in a pod the
    operator gives each child a pod of its own."""


@dataclass
class InFlight:
    step: int
    name: str
    started: float
    attempt: int


_current: contextvars.ContextVar[RunState | None] = contextvars.ContextVar(
    "stepstone_run", default=None
)
_in_step: contextvars.ContextVar[bool] = contextvars.ContextVar("stepstone_in_step", default=False)
_active: RunState | None = None  # the run this process executes, for the signal handler


def current() -> RunState | None:
    return _current.get()


def in_step() -> bool:
    return _in_step.get()


def active() -> RunState | None:
    return _active


class RunState:
    def __init__(
        self,
        *,
        store: Store,
        run: RunRecord,
        epoch: int,
        writer: StepWriter,
        records: list[StepRecord],
        options: ExecuteOptions,
    ) -> None:
        self.store = store
        self.run_id = run.run_id
        self.workflow = run.workflow
        self.epoch = epoch
        self.writer = writer
        self.options = options
        self.records = {r.step: r for r in records}
        self.completed = len(records)
        self.next_step = 1
        self.cancel = threading.Event()
        if run.cancel_requested:
            self.cancel.set()
        self.cancel_delivered = False
        self.fenced = threading.Event()
        self.waker = threading.Event()
        self.unwinding: Suspended | None = None
        self.failure: NonDeterminismError | None = None
        self.inflight: dict[int, InFlight] = {}
        self.sync_body: int | None = None  # step whose sync body runs now (SIGTERM target)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_waker: asyncio.Event | None = None

    # -- activation ---------------------------------------------------------------------
    def activate(self) -> contextvars.Token[RunState | None]:
        global _active  # noqa: PLW0603 - one executing run per process, for signals
        if threading.current_thread() is threading.main_thread():
            _active = self  # signals reach the main thread's run only
        return _current.set(self)

    def deactivate(self, token: contextvars.Token[RunState | None]) -> None:
        global _active  # noqa: PLW0603
        if _active is self:
            _active = None
        _current.reset(token)

    # -- numbering and replay -----------------------------------------------------------
    def take_step(self) -> int:
        n = self.next_step
        self.next_step += 1
        return n

    def replay(self, n: int, name: str, kind: StepKind) -> StepRecord | None:
        """The recorded outcome of step ``n``, checked against what the code calls now."""
        if self.failure is not None:
            raise self.failure
        if self.unwinding is not None:
            raise self.unwinding
        rec = self.records.get(n)
        if rec is None:
            return None
        if rec.name != name or rec.kind != kind:
            self.failure = NonDeterminismError(n, _label(rec.kind, rec.name), _label(kind, name))
            raise self.failure
        self.emit(StepEvent("replayed", n, name, rec.attempts, rec.duration))
        return rec

    # -- boundaries, cancellation, fencing ----------------------------------------------
    def boundary(self, n: int) -> None:
        """Between steps: stop here if the run was fenced, parked or cancelled."""
        if self.fenced.is_set():
            raise Fenced(f"run {self.run_id}: attempt {self.epoch} is no longer current")
        if self.unwinding is not None:
            raise self.unwinding
        if self.failure is not None:
            raise self.failure
        self.deliver_cancel(f"stopping before step {n}")
        _crash.hit(self.options.crash_points, "before_step", n)

    def deliver_cancel(self, where: str) -> None:
        """Raise ``Cancelled`` once, the first time a pending cancel request is noticed."""
        if self.cancel.is_set() and not self.cancel_delivered:
            self.cancel_delivered = True
            raise Cancelled(f"run {self.run_id} was cancelled; {where}")

    def request_cancel(self) -> None:
        self.cancel.set()
        self.wake()

    def mark_fenced(self) -> None:
        self.fenced.set()
        self.wake()

    def wake(self) -> None:
        self.waker.set()
        loop, ev = self._loop, self._async_waker
        if loop is not None and ev is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(ev.set)

    def async_waker(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._async_waker is None:
            self._loop = loop
            self._async_waker = asyncio.Event()
        return self._async_waker

    def wait(self, seconds: float) -> None:
        """Wait in process, but give way at once to a cancel request or fencing."""
        deadline = time.monotonic() + seconds
        while True:
            self.interrupt_point()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.waker.wait(remaining)
            self.waker.clear()

    async def wait_async(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        waker = self.async_waker()
        while True:
            self.interrupt_point()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), remaining)
            waker.clear()

    def interrupt_point(self) -> None:
        if self.fenced.is_set():
            raise Fenced(f"run {self.run_id}: attempt {self.epoch} is no longer current")
        self.deliver_cancel("while waiting")

    # -- recording ----------------------------------------------------------------------
    def record(
        self,
        n: int,
        name: str,
        kind: StepKind,
        *,
        status: str,
        output_json: str | None,
        error_json: str | None,
        started: float,
        attempts: int,
    ) -> None:
        try:
            cancel = self.writer.record(
                step=n,
                name=name,
                kind=kind,
                status=status,
                output_json=output_json,
                error_json=error_json,
                started=started,
                attempts=attempts,
                cleanup=self.cancel_delivered,
            )
        except Fenced:
            self.mark_fenced()
            raise
        self.completed += 1
        if cancel and not self.cancel.is_set():
            self.request_cancel()
        _crash.hit(self.options.crash_points, "after_record", n)

    def suspend(self, status: RunStatus, wake_at: float | None, waiting_for: str | None) -> bool:
        """Park the run (exit the pod); False if an awaited event is already there."""
        when = datetime.fromtimestamp(wake_at, UTC) if wake_at is not None else None
        parked = self.store.suspend(
            self.run_id,
            self.epoch,
            status=status,
            wake_at=when,
            waiting_for=waiting_for,
            completed_steps=self.completed,
        )
        if parked:
            self.unwinding = Suspended(f"run {self.run_id} is {status} until {when}")
            raise self.unwinding
        return False

    # -- progress -----------------------------------------------------------------------
    def enter(self, n: int, name: str, started: float, attempt: int) -> None:
        self.inflight[n] = InFlight(n, name, started, attempt)

    def leave(self, n: int) -> None:
        self.inflight.pop(n, None)

    def progress(self) -> Progress:
        flights = list(self.inflight.values())
        first = min(flights, key=lambda f: f.step) if flights else None
        return Progress(
            current_step=first.step if first else None,
            current_step_name=first.name if first else None,
            current_step_started=first.started if first else None,
            completed_steps=self.completed,
        )

    @property
    def listened(self) -> bool:
        """Is anyone listening for step events? (The hot path builds none otherwise.)"""
        return self.options.on_event is not None

    def emit(self, event: StepEvent) -> None:
        if self.options.on_event is not None:
            self.options.on_event(event)


def _label(kind: str, name: str) -> str:
    return name if kind == StepKind.STEP else f"{kind} {name}"
