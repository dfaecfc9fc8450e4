"""Exceptions raised by stepstone, and the one users raise to steer retries.

The hierarchy::

    BaseException
    ├── Cancelled                 the run was cancelled; raised into workflow and step code
    └── Fenced                    this runner's attempt is stale; it must stop at once
    Exception
    └── StepstoneError
        ├── StepError             raise it in a step to set retry behaviour as data
        ├── StepFailed            a recorded step error replayed whose type is not importable
        ├── StepTimeoutError      a step ran past its ``timeout``
        ├── EventTimeoutError     ``wait_for_event`` reached its timeout
        ├── NonDeterminismError   replay found a different step than the one recorded
        ├── SerializationError    an input, output or event payload is not JSON
        ├── EntrypointError       ``module:function`` cannot be imported or is not a workflow
        ├── InputError            the input does not fit the workflow's signature
        ├── RunNotFoundError      no run with that id
        ├── InvalidTransitionError  a verb that makes no sense in the run's state
        ├── RunConflictError      a run id reused with a different workflow or input
        ├── ChildRunError         a child run ended Failed, Cancelled or Terminated
        ├── SchemaVersionError    the database schema is missing or of another version
        ├── DatabaseUnavailableError  Postgres stayed unreachable past the retry deadline
        └── RunFailedError / RunCancelledError  raised by ``Client.wait`` for those outcomes

``Cancelled`` and ``Fenced`` derive from ``BaseException`` so that ``except Exception`` in user
code cannot swallow them by accident (DBOS and Temporal do the same for cancellation).
"""

from __future__ import annotations

from typing import Any


class Cancelled(BaseException):
    """The run was cancelled. Catch it to clean up (steps called then are still recorded),
    then re-raise it; a run that received it ends Cancelled either way."""


class Fenced(BaseException):
    """A newer attempt of this run exists (the operator raised the epoch): this runner's writes
    no longer commit and it must stop. Never catch it."""


class StepstoneError(Exception):
    """Base class of every error stepstone raises on purpose."""


class StepError(StepstoneError):
    """Raise from a step to say how it should be retried, Temporal-style.

    ``non_retryable=True`` fails the step at once; ``next_retry_delay`` overrides the backoff
    for the next attempt (seconds).
    """

    def __init__(
        self,
        message: str,
        *,
        non_retryable: bool = False,
        next_retry_delay: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.non_retryable = non_retryable
        self.next_retry_delay = next_retry_delay
        self.details = details


class StepFailed(StepstoneError):  # noqa: N818 - mirrors the recorded state "failed"
    """A step's recorded error, replayed, when its original type cannot be rebuilt."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class StepTimeoutError(StepstoneError):
    """A step ran longer than its ``timeout``; retried like any other error."""


class EventTimeoutError(StepstoneError):
    """``wait_for_event`` reached its timeout before an event arrived."""


class NonDeterminismError(StepstoneError):
    """Replay met a step that differs from the recorded one at the same number."""

    def __init__(self, step: int, recorded: str, found: str) -> None:
        super().__init__(
            f"non-deterministic workflow: step {step} was recorded as {recorded!r} but the "
            f"code now calls {found!r} there; restore the old step order, or fork the run "
            f"from step {step} onto the new code"
        )
        self.step = step
        self.recorded = recorded
        self.found = found


class SerializationError(StepstoneError):
    """A value that must be stored is not JSON (inputs, step outputs, events, results)."""


class EntrypointError(StepstoneError):
    """The workflow entrypoint cannot be imported or is not a ``@workflow`` function."""


class InputError(StepstoneError):
    """The run's input does not fit the workflow function's parameters."""


class RunNotFoundError(StepstoneError):
    """No run has this id."""


class InvalidTransitionError(StepstoneError):
    """The verb does not apply to the run in its current state (e.g. fork past the last
    recorded step, resume a run that is running)."""


class RunConflictError(StepstoneError):
    """A run id was reused with a different workflow or input."""


class ChildRunError(StepstoneError):
    """A child run the workflow waited for did not succeed; the message says how it ended."""


class SchemaVersionError(StepstoneError):
    """The database schema is missing, or of a version this code does not speak."""


class DatabaseUnavailableError(StepstoneError):
    """Postgres could not be reached within the retry deadline."""


class RunFailedError(StepstoneError):
    """``Client.wait``: the run ended Failed; ``error`` is the recorded error."""

    def __init__(self, run_id: str, error: dict[str, Any] | None) -> None:
        err = error or {}
        super().__init__(
            f"run {run_id} failed: {err.get('type', 'Error')}: {err.get('message', '')}"
        )
        self.run_id = run_id
        self.error = err


class RunCancelledError(StepstoneError):
    """``Client.wait``: the run ended Cancelled or Terminated."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id} ended {status}")
        self.run_id = run_id
        self.status = status
