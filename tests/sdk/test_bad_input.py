"""Bad input gets a clear error that says what to fix, and loses nothing already recorded."""

from __future__ import annotations

import pytest

from stepstone import (
    Client,
    EntrypointError,
    ExecuteOptions,
    OutcomeKind,
    RunConflictError,
    SerializationError,
)
from stepstone.contract import ExitCode
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import finish, next_attempt, spawn_runner
from tests.workflows import effects, misc, orders

FAST = ExecuteOptions(runner="test", heartbeat_seconds=0.2)


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("tests.workflows.nope:flow", "cannot import module 'tests.workflows.nope'"),
        ("tests.workflows.orders:nope", "has no attribute 'nope'"),
        ("tests.workflows.orders:STEPS", "is not a workflow: decorate it with @stepstone.workflow"),
        ("no-colon", "must look like 'package.module:function'"),
    ],
)
def test_unknown_entrypoint_is_refused_before_anything_is_recorded(
    client: Client, entrypoint: str, message: str
) -> None:
    with pytest.raises(EntrypointError, match=message):
        client.start(entrypoint, {})
    assert client.list_runs() == []


def test_a_run_whose_code_does_not_import_in_the_pod_fails_with_the_reason(
    client: Client, store: Store, database_url: str
) -> None:
    """The operator records runs of code it cannot import; the runner reports the failure."""
    run_id = client.start("broken", {}, entrypoint="tests.workflows.nope:flow").run_id
    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == ExitCode.FAILED, out
    run = store.require_run(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error and run.error["type"] == "stepstone.errors.EntrypointError"
    assert "No module named 'tests.workflows.nope'" in run.error["message"]


def test_input_that_is_not_json_is_refused(client: Client) -> None:
    with pytest.raises(SerializationError, match="the run's input is not JSON-serialisable"):
        client.start(orders.pipeline, {"order_id": {1, 2}})
    assert client.list_runs() == []


def test_input_that_does_not_fit_the_signature_fails_the_run_clearly(client: Client) -> None:
    outcome = client.run(orders.pipeline, {"order": 1}, options=FAST)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error is not None
    assert outcome.error["type"] == "stepstone.errors.InputError"
    assert outcome.error["message"].startswith(
        "input {'order': 1} does not fit workflow pipeline(order_id, block_at=None, "
        "block_seconds=60.0): missing a required argument: 'order_id'"
    )


def test_a_reused_run_id_with_other_input_is_a_conflict(client: Client) -> None:
    client.start(orders.pipeline, {"order_id": 1}, run_id="order-1")
    assert client.start(orders.pipeline, {"order_id": 1}, run_id="order-1").run_id == "order-1"
    with pytest.raises(RunConflictError, match="another input"):
        client.start(orders.pipeline, {"order_id": 2}, run_id="order-1")


def test_a_step_output_that_cannot_be_serialised_fails_the_run_naming_the_step(
    client: Client, store: Store, database_url: str
) -> None:
    outcome = client.run(misc.bad_output, options=FAST)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error is not None
    assert (
        "the output of step 1 'returns_object' is not JSON-serialisable"
        in (outcome.error["message"])
    )
    [step] = store.load_steps(outcome.run_id)
    assert (step.status, step.error and step.error["type"]) == (
        "failed",
        "stepstone.errors.SerializationError",
    )
    assert effects.counts(database_url, outcome.run_id) == {"returns_object": 1}


def test_a_workflow_that_changed_its_step_order_fails_with_both_names(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 4}).run_id
    code, _ = finish(
        spawn_runner(
            database_url, run_id, next_attempt(store, run_id), STEPSTONE_CRASH_AT="after_record:3"
        )
    )
    assert code < 0
    recorded = store.load_steps(run_id)
    # the code changed (steps 2 and 3 swapped) and the run is executed again
    swapped = misc_spec(orders.pipeline_swapped)
    outcome = client.execute(run_id, options=FAST, spec=swapped)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error is not None
    assert outcome.error["message"].startswith(
        "non-deterministic workflow: step 2 was recorded as 'reserve_stock' but the code now "
        "calls 'charge_card' there"
    )
    assert store.load_steps(run_id) == recorded  # nothing lost, nothing added
    assert effects.counts(database_url, run_id) == {
        "validate_order": 1,
        "reserve_stock": 1,
        "charge_card": 1,
    }


def test_catching_the_non_determinism_error_does_not_hide_it(client: Client) -> None:
    source = client.run(misc.nested, options=FAST)  # step 1 is "outer"
    fork = client.fork(source.run_id, 2, workflow=misc.swallow_all)  # step 1 is "mark"
    outcome = client.execute(fork.run_id, options=FAST)  # swallow_all catches Exception
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error and outcome.error["type"] == "stepstone.errors.NonDeterminismError"


def misc_spec(fn: object):  # type: ignore[no-untyped-def]
    from stepstone._workflows import spec_for

    return spec_for(fn)  # type: ignore[arg-type]
