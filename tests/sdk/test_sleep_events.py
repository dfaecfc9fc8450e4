"""Durable sleep and events: recorded wake times, parking instead of holding the process,
events kept until consumed and delivered exactly once, and timeouts."""

from __future__ import annotations

import signal
import threading
import time

from stepstone import Client, ExecuteOptions, OutcomeKind
from stepstone.contract import ExitCode
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import finish, next_attempt, spawn_runner
from tests.substrate import wait_for
from tests.workflows import effects, misc

FAST = ExecuteOptions(runner="test", heartbeat_seconds=0.1, event_poll_seconds=0.05)
PARK = ExecuteOptions(runner="test", heartbeat_seconds=0.1, suspend_after=0.5)


def test_short_sleep_stays_in_process(client: Client, store: Store) -> None:
    started = time.monotonic()
    outcome = client.run(misc.sleeper, {"seconds": 0.3}, options=FAST)
    assert outcome.kind == OutcomeKind.SUCCEEDED
    assert time.monotonic() - started >= 0.3
    assert [s.kind for s in store.load_steps(outcome.run_id)] == ["step", "sleep", "step"]


def test_a_crash_during_a_sleep_keeps_the_wake_time(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(misc.sleeper, {"seconds": 3}).run_id
    proc = spawn_runner(database_url, run_id, next_attempt(store, run_id))
    wait_for(lambda: len(store.load_steps(run_id)) == 2, 30, description="the sleep recorded")
    wake_at = store.load_steps(run_id)[1].output["wake_at"]
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == ExitCode.SUCCEEDED, out
    finished = store.require_run(run_id).finished_at
    assert finished is not None
    assert wake_at <= finished.timestamp() < wake_at + 2.5  # slept what was left, not 3 s more
    assert effects.counts(database_url, run_id) == {"before_sleep": 1, "after_sleep": 1}


def test_a_long_sleep_parks_the_run_and_a_later_attempt_finishes_it(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(misc.sleeper, {"seconds": 1.0}).run_id
    first = client.execute(run_id, options=PARK)
    assert first.kind == OutcomeKind.SUSPENDED
    run = store.require_run(run_id)
    assert run.status == RunStatus.SLEEPING and run.wake_at is not None
    wait_for(lambda: time.time() >= run.wake_at.timestamp(), 5, 0.05, "the wake time")
    second = client.execute(run_id, options=PARK)
    assert second.kind == OutcomeKind.SUCCEEDED
    assert effects.counts(database_url, run_id) == {"before_sleep": 1, "after_sleep": 1}


def test_the_runner_exits_suspended_for_a_long_sleep(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(misc.sleeper, {"seconds": 30}).run_id
    code, out = finish(
        spawn_runner(
            database_url, run_id, next_attempt(store, run_id), STEPSTONE_SUSPEND_AFTER_SECONDS="1"
        )
    )
    assert code == ExitCode.SUSPENDED, out
    assert store.require_run(run_id).status == RunStatus.SLEEPING


def test_an_event_sent_before_the_wait_is_kept(client: Client, store: Store) -> None:
    run_id = client.start(misc.approval).run_id
    assert client.send_event(run_id, "approval", {"by": "ana"})
    outcome = client.execute(run_id, options=FAST)
    assert outcome.output == {"by": "ana"}
    assert [s.name for s in store.load_steps(run_id)] == ["mark", "event:approval", "mark"]


def test_an_event_sent_during_the_wait_is_received(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(misc.approval).run_id
    result = []
    thread = threading.Thread(target=lambda: result.append(client.execute(run_id, options=FAST)))
    thread.start()
    wait_for(
        lambda: effects.counts(database_url, run_id).get("before_wait") == 1,
        30,
        description="the workflow waiting",
    )
    client.send_event(run_id, "approval", "yes")
    thread.join(30)
    assert result[0].output == "yes"


def test_the_same_event_sent_twice_with_a_key_is_delivered_once(client: Client) -> None:
    run_id = client.start(misc.two_approvals).run_id
    assert client.send_event(run_id, "approval", "a", dedup_key="k1")
    assert not client.send_event(run_id, "approval", "a again", dedup_key="k1")
    assert client.send_event(run_id, "approval", "b", dedup_key="k2")
    assert client.execute(run_id, options=FAST).output == ["a", "b"]


def test_an_event_after_the_run_consumed_one_waits_for_the_next_wait(
    client: Client, store: Store
) -> None:
    run_id = client.start(misc.approval).run_id
    client.send_event(run_id, "approval", 1)
    client.execute(run_id, options=FAST)
    client.send_event(run_id, "approval", 2)  # kept, but nothing waits for it any more
    fork = client.fork(run_id, 3)
    assert client.execute(fork.run_id, options=FAST).output == 1  # replayed, not re-consumed


def test_a_wait_times_out_with_a_clear_error(client: Client, store: Store) -> None:
    outcome = client.run(misc.approval, {"timeout": 0.3}, options=FAST)
    assert "no event 'approval' arrived within 0.3 s (step 2)" in outcome.output["timeout"]
    step = store.load_steps(outcome.run_id)[1]
    assert (step.status, step.error and step.error["type"]) == (
        "failed",
        "stepstone.errors.EventTimeoutError",
    )


def test_a_long_wait_parks_and_an_event_wakes_the_run(client: Client, store: Store) -> None:
    run_id = client.start(misc.approval, {"timeout": 3600}).run_id
    assert client.execute(run_id, options=PARK).kind == OutcomeKind.SUSPENDED
    run = store.require_run(run_id)
    assert (run.status, run.waiting_for) == (RunStatus.WAITING, "approval")
    client.send_event(run_id, "approval", "ok")
    assert store.require_run(run_id).status == RunStatus.PENDING  # runnable again
    assert client.execute(run_id, options=PARK).output == "ok"


def test_a_retried_consumption_finds_its_own_earlier_commit(client: Client, store: Store) -> None:
    """The store retries a transaction whose acknowledgement was lost: the retry must return
    the event the first try recorded, not wait for (or take) another."""
    run_id = client.start(misc.approval).run_id
    epoch = store.claim(run_id, "test").epoch
    client.send_event(run_id, "approval", "first")
    client.send_event(run_id, "approval", "second")
    take = {
        "run_id": run_id,
        "epoch": epoch,
        "step": 2,
        "step_name": "event:approval",
        "event_name": "approval",
        "started": 0.0,
        "cleanup": False,
    }
    assert store.consume_event(**take) == (True, "first")
    assert store.consume_event(**take) == (True, "first")
    assert [s.output for s in store.load_steps(run_id)] == ["first"]
