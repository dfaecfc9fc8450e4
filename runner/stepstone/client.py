"""The client for code outside workflows: start runs and steer them.

The CLI and the operator use it, and so can any service: ``Client.connect(url)`` then
``start``, ``status``, ``wait``, ``steps``, ``cancel``, ``terminate``, ``resume``, ``fork``,
``send_event``. Verbs only change what Postgres records; whoever executes the run (a pod
started by the operator, or ``Client.execute`` in this process) acts on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepstone import _serde
from stepstone._engine import Outcome, execute
from stepstone._state import ExecuteOptions
from stepstone._workflows import WorkflowSpec, spec_for
from stepstone.errors import (
    RunCancelledError,
    RunConflictError,
    RunFailedError,
)
from stepstone.store import RunRecord, RunStatus, StepRecord, Store

WorkflowRef = str | Callable[..., Any]


def local_runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def new_run_id(workflow: str) -> str:
    return f"{workflow.replace('_', '-')}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class RunHandle:
    """A run and the client that can ask about it."""

    client: Client
    run_id: str

    def status(self) -> RunRecord:
        return self.client.status(self.run_id)

    def result(self, timeout: float | None = None) -> Any:
        return self.client.wait(self.run_id, timeout=timeout)

    def steps(self) -> list[StepRecord]:
        return self.client.steps(self.run_id)


class Client:
    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def connect(cls, database_url: str, *, retry_seconds: float = 30.0) -> Client:
        return cls(Store.connect(database_url, retry_seconds=retry_seconds, app="stepstone-client"))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- starting -----------------------------------------------------------------------
    def start(
        self,
        workflow: WorkflowRef,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        entrypoint: str | None = None,
    ) -> RunHandle:
        """Record a new pending run; idempotent on ``run_id`` (same workflow and input).

        ``workflow`` is a ``@workflow`` function or its ``module:function`` (imported to check
        it). Pass ``entrypoint`` instead to record a run of code this process cannot import
        (the operator does).
        """
        if entrypoint is None:
            spec = spec_for(workflow)
            name, entrypoint = spec.name, spec.entrypoint
        else:
            name = workflow if isinstance(workflow, str) else spec_for(workflow).name
        input_json = _serde.dumps(input, what="the run's input")
        rid = run_id or new_run_id(name)
        created, run = self.store.create_run(
            run_id=rid,
            workflow=name,
            entrypoint=entrypoint,
            version=version,
            input_json=input_json,
        )
        if not created and (run.entrypoint != entrypoint or run.input != _serde.loads(input_json)):
            raise RunConflictError(
                f"run {rid!r} exists with entrypoint {run.entrypoint} and another input; "
                "choose a new run id"
            )
        return RunHandle(self, rid)

    def execute(
        self,
        run_id: str,
        *,
        options: ExecuteOptions | None = None,
        spec: WorkflowSpec | None = None,
    ) -> Outcome:
        """Execute the run in this process (claiming a new attempt) until it ends or parks."""
        return execute(
            self.store,
            run_id,
            options=options or ExecuteOptions(runner=local_runner_name()),
            spec=spec,
        )

    def run(
        self,
        workflow: WorkflowRef,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        options: ExecuteOptions | None = None,
    ) -> Outcome:
        """``start`` then ``execute`` here: the simplest way to run a workflow durably."""
        handle = self.start(workflow, input, run_id=run_id, version=version)
        spec = spec_for(workflow) if not isinstance(workflow, str) else None
        return self.execute(handle.run_id, options=options, spec=spec)

    # -- reading ------------------------------------------------------------------------
    def status(self, run_id: str) -> RunRecord:
        return self.store.require_run(run_id)

    def steps(self, run_id: str) -> list[StepRecord]:
        self.store.require_run(run_id)
        return self.store.load_steps(run_id)

    def list_runs(
        self, *, status: list[RunStatus] | None = None, limit: int = 50
    ) -> list[RunRecord]:
        return self.store.list_runs(statuses=status, limit=limit)

    def wait(self, run_id: str, *, timeout: float | None = None, poll: float = 0.2) -> Any:
        """Block until the run ends; its result, or ``RunFailedError``/``RunCancelledError``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.status(run_id)
            if run.status == RunStatus.SUCCEEDED:
                return run.output
            if run.status == RunStatus.FAILED:
                raise RunFailedError(run_id, run.error)
            if run.status in (RunStatus.CANCELLED, RunStatus.TERMINATED):
                raise RunCancelledError(run_id, str(run.status))
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
            time.sleep(poll)

    # -- verbs --------------------------------------------------------------------------
    def cancel(self, run_id: str) -> RunRecord:
        """Ask the run to stop at its next step boundary (idempotent; reaches child runs).
        A run that is not executing is cancelled at once."""
        run = self.store.request_cancel(run_id)
        _signal_local_runner(run, terminate=False)
        return run

    def terminate(self, run_id: str) -> RunRecord:
        """Stop now: the attempt is fenced and nothing it does afterwards is recorded."""
        before = self.store.require_run(run_id)
        run = self.store.terminate(run_id)
        _signal_local_runner(before, terminate=True)
        return run

    def resume(self, run_id: str, *, force: bool = False) -> RunRecord:
        """Make a cancelled, terminated or failed run pending again from its last completed
        step. ``force`` also takes over a run whose runner died (stale heartbeat)."""
        return self.store.resume(run_id, force=force)

    def fork(
        self,
        run_id: str,
        from_step: int,
        *,
        new_run_id: str | None = None,
        workflow: WorkflowRef | None = None,
        entrypoint: str | None = None,
        version: str | None = None,
    ) -> RunRecord:
        """A new run reusing ``run_id``'s recorded steps before ``from_step``; the source is
        untouched. ``workflow``/``entrypoint`` move the fork onto other code."""
        name = None
        if workflow is not None:
            spec = spec_for(workflow)
            name, entrypoint = spec.name, spec.entrypoint
        source = self.store.require_run(run_id)
        return self.store.fork(
            source_id=run_id,
            new_run_id=new_run_id or new_run_id_for_fork(source.run_id),
            from_step=from_step,
            workflow=name,
            entrypoint=entrypoint,
            version=version,
        )

    def send_event(
        self, run_id: str, name: str, payload: Any = None, *, dedup_key: str | None = None
    ) -> bool:
        """Deliver an event; kept until the run waits for it. With ``dedup_key`` a repeated
        send is stored once. Returns whether it was new."""
        new, _ = self.store.send_event(
            run_id, name, _serde.dumps(payload, what="the event payload"), dedup_key
        )
        return new


def new_run_id_for_fork(source: str) -> str:
    return f"{source}-fork-{uuid.uuid4().hex[:6]}"


def _signal_local_runner(run: RunRecord, *, terminate: bool) -> None:
    """A run executing in a local process on this host gets SIGTERM (cancel: delivered into
    its step) or SIGKILL (terminate). Runners in pods are the operator's business."""
    if run.status != RunStatus.RUNNING or not run.runner:
        return
    host, _, pid = run.runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(int(pid), signal.SIGKILL if terminate else signal.SIGTERM)
