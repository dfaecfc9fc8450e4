"""Steps: numbering, retries with backoff, non-retryable errors, timeouts, replayed errors,
the run context, nested steps, and async workflows and steps."""

from __future__ import annotations

import threading

import pytest

from stepstone import Client, ExecuteOptions, OutcomeKind, StepFailed
from stepstone._serde import rebuild_error
from stepstone.store import Store
from tests.substrate import wait_for
from tests.workflows import effects, misc

FAST = ExecuteOptions(runner="test", heartbeat_seconds=0.1)


def test_retries_with_backoff_record_one_outcome_with_its_tries(
    client: Client, store: Store, database_url: str
) -> None:
    outcome = client.run(misc.retrying, {"fail_times": 2}, options=FAST)
    assert (outcome.kind, outcome.output) == (OutcomeKind.SUCCEEDED, 3)
    [step] = store.load_steps(outcome.run_id)
    assert (step.name, step.status, step.attempts) == ("flaky", "succeeded", 3)
    assert effects.counts(database_url, outcome.run_id) == {"flaky": 3}


def test_retries_run_out(client: Client, store: Store, database_url: str) -> None:
    outcome = client.run(misc.retrying, {"fail_times": 10}, options=FAST)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error and outcome.error["type"] == "ConnectionError"
    assert effects.counts(database_url, outcome.run_id) == {"flaky": 4}  # 1 + 3 retries
    [step] = store.load_steps(outcome.run_id)
    assert (step.status, step.attempts) == ("failed", 4)


def test_non_retryable_types_fail_at_once_and_replay_the_same_error(
    client: Client, database_url: str
) -> None:
    outcome = client.run(misc.declined, options=FAST)
    assert outcome.output == "caught card declined"
    assert effects.counts(database_url, outcome.run_id) == {"declines": 1}
    # replay the recorded failure: the workflow's `except PaymentDeclinedError` catches it again
    fork = client.fork(outcome.run_id, 2)
    replayed = client.execute(fork.run_id, options=FAST)
    assert replayed.output == "caught card declined"
    assert effects.counts(database_url, fork.run_id) == {}


def test_step_error_non_retryable(client: Client, database_url: str) -> None:
    outcome = client.run(misc.giving_up, options=FAST)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error and outcome.error["message"] == "account closed"
    assert effects.counts(database_url, outcome.run_id) == {"gives_up": 1}


def test_timeouts_bound_each_try(client: Client, database_url: str) -> None:
    outcome = client.run(misc.timing_out, options=FAST)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error and outcome.error["type"] == "stepstone.errors.StepTimeoutError"
    assert "step 1 'too_slow' timed out after 0.2 s" in outcome.error["message"]
    assert effects.counts(database_url, outcome.run_id) == {"too_slow": 2}


def test_current_run_and_idempotency_keys(client: Client) -> None:
    outcome = client.run(misc.info_probe, options=FAST)
    first, second = outcome.output["first"], outcome.output["second"]
    assert (first["step"], second["step"]) == (1, 2)
    assert first["key"] == f"{outcome.run_id}/1" != second["key"]
    assert first["attempt"] == 1
    assert first["name"] == "probe"


def test_nested_steps_are_plain_calls(client: Client, store: Store) -> None:
    outcome = client.run(misc.nested, options=FAST)
    assert outcome.output == 42
    assert [s.name for s in store.load_steps(outcome.run_id)] == ["outer"]


def test_steps_outside_a_workflow_are_plain_calls() -> None:
    assert misc.inner() == 41


def test_outputs_are_the_json_form_on_first_run_and_on_replay(client: Client) -> None:
    outcome = client.run(misc.echo, {"value": [1, "two", {"3": None}]}, options=FAST)
    assert outcome.output == [1, "two", {"3": None}]


def test_input_shapes(client: Client) -> None:
    assert client.run(misc.echo, options=FAST).output is None
    assert client.run(misc.echo, {"value": 5}, options=FAST).output == 5
    assert client.run(misc.echo, [7], options=FAST).output == 7
    assert client.run(misc.echo, "x", options=FAST).output == "x"
    assert client.run(misc.echo, {"a": 1, "b": 2}, options=FAST).output == {"a": 1, "b": 2}


def test_async_workflow_with_async_and_sync_steps(client: Client, store: Store) -> None:
    outcome = client.run(misc.async_flow, {"x": 3}, options=FAST)
    assert outcome.output == 12
    assert [s.name for s in store.load_steps(outcome.run_id)] == [
        "async_double",
        "identity",
        "async_double",
    ]


def test_cancel_reaches_an_async_step_as_asyncio_cancellation(
    client: Client, database_url: str
) -> None:
    run_id = client.start(misc.async_flow, {"x": 1, "block": 60}).run_id
    result = []
    thread = threading.Thread(target=lambda: result.append(client.execute(run_id, options=FAST)))
    thread.start()
    wait_for(
        lambda: effects.counts(database_url, run_id).get("async_block") == 1,
        30,
        description="the async step running",
    )
    client.cancel(run_id)
    thread.join(30)
    assert result[0].kind == OutcomeKind.CANCELLED
    assert effects.counts(database_url, run_id)["async_block_cancelled"] == 1


def test_errors_rebuild_their_type_or_fall_back() -> None:
    assert isinstance(rebuild_error({"type": "ValueError", "message": "x"}), ValueError)
    fallback = rebuild_error({"type": "no.such.Error", "message": "boom"})
    assert isinstance(fallback, StepFailed)
    assert str(fallback) == "no.such.Error: boom"


@pytest.mark.parametrize("n", [1, 250])
def test_many_steps_replay_without_running(client: Client, store: Store, n: int) -> None:
    first = client.run(misc.many, {"n": n}, options=FAST)
    assert first.output == sum(range(n))
    fork = client.fork(first.run_id, n + 1)
    again = client.execute(fork.run_id, options=FAST)
    assert (again.output, again.replayed, again.executed) == (sum(range(n)), n, 0)
