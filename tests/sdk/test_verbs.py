"""Cancel, terminate, resume and fork against a real Postgres, from the phases where they
apply, and idempotent when repeated."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stepstone import (
    Client,
    ExecuteOptions,
    InvalidTransitionError,
    Outcome,
    OutcomeKind,
    RunConflictError,
    RunNotFoundError,
)
from stepstone.contract import ExitCode
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import finish, next_attempt, spawn_runner
from tests.substrate import wait_for
from tests.workflows import effects, misc, orders

FAST = ExecuteOptions(runner="test", heartbeat_seconds=0.1)


@contextmanager
def executing(client: Client, run_id: str) -> Iterator[list[Outcome]]:
    """Execute a run in a background thread; the list receives its outcome."""
    result: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: result.append(client.execute(run_id, options=FAST)), daemon=True
    )
    thread.start()
    try:
        yield result
    finally:
        thread.join(timeout=30)
        assert not thread.is_alive(), "execution did not end"


def _blocked_in_charge(client: Client, database_url: str) -> str:
    """A run whose step 3 (charge_card) runs for a minute on its first attempt."""
    return client.start(orders.pipeline, {"order_id": 3, "block_at": "charge_card"}).run_id


# -- cancel ---------------------------------------------------------------------------------
def test_cancel_a_pending_run_is_immediate_and_fences_its_attempt(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 1}).run_id
    attempt = next_attempt(store, run_id)  # a pod is being created for it
    run = client.cancel(run_id)
    assert run.status == RunStatus.CANCELLED
    code, out = finish(spawn_runner(database_url, run_id, attempt))
    assert code == ExitCode.FENCED, out
    assert effects.counts(database_url, run_id) == {}


def test_cancel_while_a_long_step_runs_delivers_cancelled_and_records_cleanup(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = _blocked_in_charge(client, database_url)
    with executing(client, run_id) as outcome:
        wait_for(
            lambda: effects.counts(database_url, run_id).get("charge_card") == 1,
            30,
            description="step 3 running",
        )
        assert client.cancel(run_id).cancel_requested
    assert outcome[0].kind == OutcomeKind.CANCELLED
    steps = store.load_steps(run_id)
    assert [(s.step, s.name, s.cleanup) for s in steps] == [
        (1, "validate_order", False),
        (2, "reserve_stock", False),
        # step 3 (charge_card) was interrupted and stays unrecorded; the cleanup step the
        # workflow ran after Cancelled is recorded, marked as cleanup
        (4, "release_stock", True),
    ]
    run = store.require_run(run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.error and run.error["type"] == "stepstone.errors.Cancelled"
    # cancel is idempotent
    assert client.cancel(run_id).status == RunStatus.CANCELLED


def test_resume_after_cancel_continues_from_the_last_completed_step(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = _blocked_in_charge(client, database_url)
    with executing(client, run_id):
        wait_for(
            lambda: effects.counts(database_url, run_id).get("charge_card") == 1,
            30,
            description="step 3 running",
        )
        client.cancel(run_id)
    resumed = client.resume(run_id)
    assert resumed.status == RunStatus.PENDING
    assert client.resume(run_id).epoch == resumed.epoch  # idempotent: already pending
    outcome = client.execute(run_id, options=FAST)
    assert outcome.kind == OutcomeKind.SUCCEEDED, outcome
    assert outcome.replayed == 2
    assert effects.counts(database_url, run_id) == {
        "validate_order": 1,
        "reserve_stock": 1,
        "charge_card": 2,  # interrupted by the cancel, then run again
        "release_stock": 1,
        "ship": 1,
        "notify": 1,
    }
    assert [s.name for s in store.load_steps(run_id)] == list(orders.STEPS)


def test_sigterm_with_a_cancel_request_is_delivered_into_a_sync_step(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(misc.stubborn, {"seconds": 60}).run_id
    proc = spawn_runner(database_url, run_id, next_attempt(store, run_id))
    wait_for(
        lambda: effects.counts(database_url, run_id).get("stubborn") == 1,
        30,
        description="the stubborn step running",
    )
    client.cancel(run_id)
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc, timeout=15)
    assert code == ExitCode.CANCELLED, out
    counts = effects.counts(database_url, run_id)
    assert counts["stubborn_saw_cancel"] == 1
    assert counts["cleanup"] == 1
    assert [s.name for s in store.load_steps(run_id)] == ["mark", "mark"]
    assert store.require_run(run_id).status == RunStatus.CANCELLED


def test_sigterm_without_a_cancel_request_exits_interrupted_and_records_nothing(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(misc.stubborn, {"seconds": 60}).run_id
    proc = spawn_runner(database_url, run_id, next_attempt(store, run_id))
    wait_for(
        lambda: effects.counts(database_url, run_id).get("stubborn") == 1,
        30,
        description="the stubborn step running",
    )
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc, timeout=10)
    assert code == ExitCode.INTERRUPTED, out
    assert "stubborn_saw_cancel" not in effects.counts(database_url, run_id)
    assert [s.name for s in store.load_steps(run_id)] == ["mark"]
    assert store.require_run(run_id).status == RunStatus.RUNNING  # for the operator to relaunch


# -- terminate ------------------------------------------------------------------------------
def test_terminate_then_resume_reruns_only_the_interrupted_step(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = _blocked_in_charge(client, database_url)
    proc = spawn_runner(
        database_url, run_id, next_attempt(store, run_id), STEPSTONE_POD_NAME="pod-a"
    )
    wait_for(
        lambda: effects.counts(database_url, run_id).get("charge_card") == 1,
        30,
        description="step 3 running",
    )
    run = client.terminate(run_id)
    assert run.status == RunStatus.TERMINATED
    code, out = finish(proc, timeout=15)
    assert code == ExitCode.FENCED, out  # its heartbeat found the attempt fenced
    assert [s.step for s in store.load_steps(run_id)] == [1, 2]
    assert client.terminate(run_id).epoch == run.epoch  # idempotent

    client.resume(run_id)
    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == ExitCode.SUCCEEDED, out
    counts = effects.counts(database_url, run_id)
    assert counts == {
        "validate_order": 1,
        "reserve_stock": 1,
        "charge_card": 2,
        "ship": 1,
        "notify": 1,
    }


# -- resume a failed run --------------------------------------------------------------------
def test_resume_a_failed_run_retries_the_failed_step_only(
    client: Client, store: Store, database_url: str
) -> None:
    first = client.run(misc.recovers_on_retry, options=FAST)
    assert first.kind == OutcomeKind.FAILED
    assert first.error and first.error["message"] == "upstream outage"
    assert [s.status for s in store.load_steps(first.run_id)] == ["succeeded", "failed"]
    client.resume(first.run_id)
    second = client.execute(first.run_id, options=FAST)
    assert second.kind == OutcomeKind.SUCCEEDED
    assert second.output == ["before", "recovered", "after"]
    assert effects.counts(database_url, first.run_id) == {
        "before": 1,
        "fails_first_time": 2,
        "after": 1,
    }


def test_resume_a_succeeded_run_is_refused(client: Client) -> None:
    done = client.run(orders.pipeline, {"order_id": 1}, options=FAST)
    with pytest.raises(InvalidTransitionError, match="fork it"):
        client.resume(done.run_id)


# -- fork -----------------------------------------------------------------------------------
def test_fork_from_step_3_reruns_steps_3_to_5_and_leaves_the_source_alone(
    client: Client, store: Store, database_url: str
) -> None:
    source = client.run(orders.pipeline, {"order_id": 8}, options=FAST)
    before = store.load_steps(source.run_id)
    fork = client.fork(source.run_id, 3)
    assert fork.status == RunStatus.PENDING
    assert (fork.forked_from, fork.fork_step) == (source.run_id, 3)
    outcome = client.execute(fork.run_id, options=FAST)
    assert outcome.kind == OutcomeKind.SUCCEEDED
    assert outcome.replayed == 2
    assert effects.counts(database_url, fork.run_id) == {"charge_card": 1, "ship": 1, "notify": 1}
    assert store.load_steps(source.run_id) == before
    assert store.require_run(source.run_id).status == RunStatus.SUCCEEDED
    # the same fork id again is the same fork
    assert client.fork(source.run_id, 3, new_run_id=fork.run_id).run_id == fork.run_id
    with pytest.raises(RunConflictError):
        client.fork(source.run_id, 2, new_run_id=fork.run_id)


def test_fork_onto_changed_code_fails_only_when_a_reused_step_differs(
    client: Client, store: Store
) -> None:
    source = client.run(orders.pipeline, {"order_id": 8}, options=FAST)
    ok = client.fork(source.run_id, 3, workflow=orders.pipeline_v2)
    outcome = client.execute(ok.run_id, options=FAST)
    assert outcome.kind == OutcomeKind.SUCCEEDED
    assert outcome.output["version"] == 2
    bad = client.fork(source.run_id, 4, workflow=orders.pipeline_v2)
    outcome = client.execute(bad.run_id, options=FAST)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error is not None
    assert outcome.error["type"] == "stepstone.errors.NonDeterminismError"
    assert "step 3 was recorded as 'charge_card'" in outcome.error["message"]
    assert "'charge_card_v2'" in outcome.error["message"]


def test_fork_from_a_cancelled_or_running_source(
    client: Client, store: Store, database_url: str
) -> None:
    # the forks inherit the input, so their step 3 blocks too: keep the block short
    run_id = client.start(
        orders.pipeline, {"order_id": 3, "block_at": "charge_card", "block_seconds": 1.5}
    ).run_id
    with executing(client, run_id):
        wait_for(
            lambda: effects.counts(database_url, run_id).get("charge_card") == 1,
            30,
            description="step 3 running",
        )
        running_fork = client.fork(run_id, 3)  # from a running source
        client.cancel(run_id)
    cancelled_fork = client.fork(run_id, 2)
    with pytest.raises(InvalidTransitionError, match="forked from step 1 to 3"):
        client.fork(run_id, 4)  # step 3 of the source is a cleanup step, not reusable
    for fork in (running_fork, cancelled_fork):
        assert client.execute(fork.run_id, options=FAST).kind == OutcomeKind.SUCCEEDED


def test_fork_rejects_steps_out_of_range_and_missing_runs(client: Client) -> None:
    source = client.run(orders.pipeline, {"order_id": 8}, options=FAST)
    with pytest.raises(InvalidTransitionError, match="1 or more"):
        client.fork(source.run_id, 0)
    with pytest.raises(InvalidTransitionError, match="from step 1 to 6, not from step 7"):
        client.fork(source.run_id, 7)
    with pytest.raises(RunNotFoundError):
        client.fork("no-such-run", 1)
