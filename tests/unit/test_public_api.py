"""The public surface is pinned: a refactor that drops or renames an exported name fails here
before it breaks a user (Temporal's SDK does the same)."""

from __future__ import annotations

from pathlib import Path

import stepstone
from stepstone import contract

REPO = Path(__file__).resolve().parents[2]

EXPORTED = {
    "Cancelled",
    "ChildHandle",
    "ChildRunError",
    "Client",
    "DatabaseUnavailableError",
    "EntrypointError",
    "EventTimeoutError",
    "ExecuteOptions",
    "Fenced",
    "InputError",
    "InvalidTransitionError",
    "NonDeterminismError",
    "Outcome",
    "OutcomeKind",
    "RunCancelledError",
    "RunConflictError",
    "RunFailedError",
    "RunHandle",
    "RunInfo",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SchemaVersionError",
    "SerializationError",
    "StepError",
    "StepEvent",
    "StepFailed",
    "StepRecord",
    "StepTimeoutError",
    "StepstoneError",
    "current_run",
    "heartbeat",
    "sleep",
    "sleep_async",
    "start_child",
    "step",
    "wait_child",
    "wait_for_event",
    "wait_for_event_async",
    "workflow",
}


def test_exported_names_are_pinned() -> None:
    assert set(stepstone.__all__) == EXPORTED
    for name in EXPORTED:
        assert getattr(stepstone, name) is not None


def test_cancellation_cannot_be_swallowed_by_except_exception() -> None:
    assert not issubclass(stepstone.Cancelled, Exception)
    assert not issubclass(stepstone.Fenced, Exception)


def test_source_roots_are_not_packages() -> None:
    """`operator/` would shadow the standard library's `operator` module if it were one."""
    for root in ("operator", "runner"):
        assert not (REPO / root / "__init__.py").exists(), f"{root}/__init__.py must not exist"


def test_exit_codes_cannot_be_mistaken_for_crashes_or_signals() -> None:
    codes = [int(c) for c in contract.ExitCode]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert code not in (1, 2) and code < 128
