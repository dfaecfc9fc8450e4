"""Child workflows in local mode: started once, even across a crash of the parent; their
result or failure reaches the parent; cancelling the parent cancels them."""

from __future__ import annotations

import signal
import threading

from stepstone import Client, ExecuteOptions, OutcomeKind
from stepstone.contract import child_run_id
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import finish, next_attempt, spawn_runner
from tests.substrate import wait_for
from tests.workflows import effects, family

FAST = ExecuteOptions(runner="test", heartbeat_seconds=0.1)


def test_a_child_runs_and_its_result_reaches_the_parent(
    client: Client, store: Store, database_url: str
) -> None:
    outcome = client.run(family.parent, {"x": 4}, options=FAST)
    assert outcome.kind == OutcomeKind.SUCCEEDED, outcome
    child_id = child_run_id(outcome.run_id, 2)
    assert outcome.output == {"child": child_id, "result": 40}
    child = store.require_run(child_id)
    assert (child.status, child.parent_run_id, child.parent_step) == (
        RunStatus.SUCCEEDED,
        outcome.run_id,
        2,
    )
    assert [s.kind for s in store.load_steps(outcome.run_id)] == ["step", "child", "child", "step"]


def test_a_failed_child_raises_child_run_error_in_the_parent(client: Client) -> None:
    outcome = client.run(family.parent, {"x": -1}, options=FAST)
    assert outcome.output["error"].startswith(
        f"child run {outcome.output['child']} ended failed: ValueError: negative input"
    )


def test_a_child_is_started_once_across_a_parent_crash(
    client: Client, store: Store, database_url: str
) -> None:
    """The parent dies right after recording the step that started its child."""
    run_id = client.start(family.parent, {"x": 2}).run_id
    code, out = finish(
        spawn_runner(
            database_url, run_id, next_attempt(store, run_id), STEPSTONE_CRASH_AT="after_record:2"
        )
    )
    assert code == -signal.SIGKILL, out
    children = store.list_runs(parent_run_id=run_id)
    assert [c.run_id for c in children] == [child_run_id(run_id, 2)]
    client.resume(run_id, force=True)
    outcome = client.execute(run_id, options=FAST)
    assert outcome.output == {"child": child_run_id(run_id, 2), "result": 20}
    assert len(store.list_runs(parent_run_id=run_id)) == 1
    assert effects.counts(database_url, children[0].run_id) == {"child_work": 1}
    assert effects.counts(database_url, run_id) == {"parent_before": 1, "parent_after": 1}


def test_cancelling_the_parent_cancels_its_children(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(family.parent, {"x": 1, "seconds": 60}).run_id
    result = []
    thread = threading.Thread(target=lambda: result.append(client.execute(run_id, options=FAST)))
    thread.start()
    child = child_run_id(run_id, 2)
    wait_for(
        lambda: effects.counts(database_url, child).get("child_work") == 1,
        30,
        description="the child running",
    )
    client.cancel(run_id)
    thread.join(30)
    assert result[0].kind == OutcomeKind.CANCELLED
    wait_for(
        lambda: store.require_run(child).status == RunStatus.CANCELLED,
        10,
        description="the child cancelled",
    )


def test_a_parent_in_a_pod_parks_while_its_child_runs(
    client: Client, store: Store, database_url: str
) -> None:
    """In a pod (no local child execution), a long wait releases the pod; the child's end
    makes the parent runnable again."""
    run_id = client.start(family.parent, {"x": 3}).run_id
    code, out = finish(
        spawn_runner(
            database_url, run_id, next_attempt(store, run_id), STEPSTONE_SUSPEND_AFTER_SECONDS="0.5"
        )
    )
    assert code == 12, out  # suspended
    parent = store.require_run(run_id)
    child = child_run_id(run_id, 2)
    assert (parent.status, parent.waiting_for) == (RunStatus.WAITING, f"child:{child}")
    assert client.execute(child, options=FAST).kind == OutcomeKind.SUCCEEDED
    assert store.require_run(run_id).status == RunStatus.PENDING  # woken by its child
    code, out = finish(spawn_runner(database_url, run_id, next_attempt(store, run_id)))
    assert code == 0, out
    assert store.require_run(run_id).output == {"child": child, "result": 30}
