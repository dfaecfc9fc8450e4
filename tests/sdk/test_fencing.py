"""Fencing: only the current attempt's runner records anything; a second writer of a step is
detected, never overwrites; a zombie runner of an old attempt cannot record a step."""

from __future__ import annotations

import pytest

from stepstone import Client, Fenced
from stepstone.contract import ExitCode
from stepstone.store import Store
from tests.sdk.conftest import finish, next_attempt, spawn_runner
from tests.substrate import wait_for
from tests.workflows import effects, orders


def _record(store: Store, run_id: str, epoch: int, step: int, output: str) -> bool:
    writer = store.writer(run_id, epoch)
    try:
        return writer.record(
            step=step,
            name=f"s{step}",
            kind="step",
            status="succeeded",
            output_json=output,
            error_json=None,
            started=0.0,
            attempts=1,
            cleanup=False,
        )
    finally:
        writer.close()


def test_two_runners_with_different_epochs_only_the_current_records(
    client: Client, store: Store
) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 1}).run_id
    old = next_attempt(store, run_id)
    _record(store, run_id, old, 1, '"old-1"')
    new = next_attempt(store, run_id)
    with pytest.raises(Fenced, match=f"attempt {old} may not record step 2"):
        _record(store, run_id, old, 2, '"old-2"')
    _record(store, run_id, new, 2, '"new-2"')
    steps = store.load_steps(run_id)
    assert [(s.step, s.output, s.epoch) for s in steps] == [(1, "old-1", old), (2, "new-2", new)]


def test_a_second_writer_of_a_step_is_detected_not_overwritten(
    client: Client, store: Store
) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 1}).run_id
    epoch = next_attempt(store, run_id)
    _record(store, run_id, epoch, 1, '"first"')
    with pytest.raises(Fenced, match="already recorded"):
        _record(store, run_id, epoch, 1, '"second"')
    assert [s.output for s in store.load_steps(run_id)] == ["first"]


def test_stale_runner_cannot_finish_the_run(client: Client, store: Store) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 1}).run_id
    old = next_attempt(store, run_id)
    next_attempt(store, run_id)
    with pytest.raises(Fenced):
        store.finish(run_id, old, status="succeeded", output_json='"zombie"')
    with pytest.raises(Fenced):
        store.begin_attempt(run_id, old, "zombie")
    assert store.require_run(run_id).output is None


def test_zombie_runner_of_an_old_attempt_cannot_record_a_step(
    client: Client, store: Store, database_url: str
) -> None:
    """Attempt 1 is partitioned inside step 3 (its heartbeat too slow to notice); attempt 2 takes
    over and finishes. When the zombie's step returns, its checkpoint is refused and it exits."""
    run_id = client.start(
        orders.pipeline, {"order_id": 5, "block_at": "charge_card", "block_seconds": 3}
    ).run_id
    zombie_attempt = next_attempt(store, run_id)
    zombie = spawn_runner(database_url, run_id, zombie_attempt, STEPSTONE_HEARTBEAT_SECONDS="60")
    wait_for(
        lambda: effects.counts(database_url, run_id).get("charge_card") == 1,
        timeout=30,
        description="the zombie inside step 3",
    )

    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == ExitCode.SUCCEEDED, out

    code, out = finish(zombie)
    assert code == ExitCode.FENCED, out
    assert "may not record step 3" in out
    steps = store.load_steps(run_id)
    assert [s.epoch for s in steps] == [zombie_attempt, zombie_attempt] + [zombie_attempt + 1] * 3
    counts = effects.counts(database_url, run_id)
    assert counts["charge_card"] == 2  # the zombie's body ran; only the new attempt's counts
    assert counts["ship"] == counts["notify"] == 1


def test_fenced_runner_stops_within_a_heartbeat(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(
        orders.pipeline, {"order_id": 5, "block_at": "charge_card", "block_seconds": 60}
    ).run_id
    proc = spawn_runner(database_url, run_id, next_attempt(store, run_id))
    wait_for(
        lambda: effects.counts(database_url, run_id).get("charge_card") == 1,
        timeout=30,
        description="the runner inside step 3",
    )
    next_attempt(store, run_id)
    code, out = finish(proc, timeout=10)
    assert code == ExitCode.FENCED, out
    assert len(store.load_steps(run_id)) == 2
