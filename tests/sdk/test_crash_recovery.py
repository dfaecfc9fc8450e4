"""The durability specification: kill the runner at the worst moments, resume, and prove from
side effects counted in Postgres that every completed step ran exactly once and only the step in
flight ran again."""

from __future__ import annotations

import signal

import pytest

from stepstone import Client
from stepstone.contract import ExitCode
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import finish, next_attempt, spawn_runner
from tests.substrate import wait_for
from tests.workflows import effects, orders

ALL_ONCE = dict.fromkeys(orders.STEPS, 1)


@pytest.mark.parametrize(
    ("where", "crash", "block_at", "charge_runs"),
    [
        # the process dies at the boundary before step 3 starts: step 3 never ran
        ("before step 3", "before_step:3", None, 1),
        # the process dies while step 3's body runs: its side effect happened, no record
        ("inside step 3", None, "charge_card", 2),
        # the worst moment: step 3's body returned, its checkpoint was not written
        ("between step 3's side effect and its checkpoint", "after_step_body:3", None, 2),
        # the checkpoint of step 3 committed, the process died right after
        ("right after step 3's checkpoint", "after_record:3", None, 1),
    ],
)
def test_sigkill_then_resume_runs_completed_steps_once(
    client: Client,
    store: Store,
    database_url: str,
    where: str,
    crash: str | None,
    block_at: str | None,
    charge_runs: int,
) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 42, "block_at": block_at}).run_id
    first = next_attempt(store, run_id)
    extra = {"STEPSTONE_CRASH_AT": crash} if crash else {}
    proc = spawn_runner(database_url, run_id, first, **extra)
    if block_at:
        wait_for(
            lambda: effects.counts(database_url, run_id).get(block_at) == 1,
            timeout=30,
            description="step 3's side effect",
        )
        proc.send_signal(signal.SIGKILL)
    code, out = finish(proc)
    assert code == -signal.SIGKILL, out

    recorded = [s.step for s in store.load_steps(run_id)]
    assert recorded == [1, 2] if charge_runs == 2 or crash == "before_step:3" else [1, 2, 3]

    second = next_attempt(store, run_id)
    code, out = finish(spawn_runner(database_url, run_id, second))
    assert code == ExitCode.SUCCEEDED, out

    assert effects.counts(database_url, run_id) == {**ALL_ONCE, "charge_card": charge_runs}, where
    steps = store.load_steps(run_id)
    assert [(s.step, s.name) for s in steps] == list(enumerate(orders.STEPS, start=1))
    assert all(s.status == "succeeded" for s in steps)
    assert [s.epoch for s in steps[:2]] == [first, first]
    run = store.require_run(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output == {"order_id": 42, "steps": list(orders.STEPS)}


def test_kill_before_the_result_is_recorded_replays_everything(
    client: Client, store: Store, database_url: str
) -> None:
    """All five steps recorded, the process dies before the run's outcome is written: the next
    attempt replays all five without running any and records the result."""
    run_id = client.start(orders.pipeline, {"order_id": 1}).run_id
    code, out = finish(
        spawn_runner(
            database_url, run_id, next_attempt(store, run_id), STEPSTONE_CRASH_AT="before_finish:0"
        )
    )
    assert code == -signal.SIGKILL, out
    assert store.require_run(run_id).status == RunStatus.RUNNING
    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == ExitCode.SUCCEEDED, out
    assert effects.counts(database_url, run_id) == ALL_ONCE
    assert store.require_run(run_id).status == RunStatus.SUCCEEDED


def test_repeated_crashes_at_every_step_still_run_each_step_once(
    client: Client, store: Store, database_url: str
) -> None:
    """Crash right after each checkpoint in turn: five attempts, each finishing one step."""
    run_id = client.start(orders.pipeline, {"order_id": 9}).run_id
    for n in range(1, 6):
        code, out = finish(
            spawn_runner(
                database_url,
                run_id,
                next_attempt(store, run_id),
                STEPSTONE_CRASH_AT=f"after_record:{n}",
            )
        )
        assert code == -signal.SIGKILL, out
        assert len(store.load_steps(run_id)) == n
    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == ExitCode.SUCCEEDED, out
    assert effects.counts(database_url, run_id) == ALL_ONCE
    assert [s.epoch for s in store.load_steps(run_id)] == [1, 2, 3, 4, 5]
