"""The operator's decisions, as tables: what it does to a run in each situation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stepstone.store.records import RunStatus
from stepstone_operator.actions import (
    CompleteCancel,
    CreateChild,
    CreateFork,
    CreateRun,
    DeletePod,
    DeleteRunObject,
    FailRun,
    ForkRun,
    LaunchPod,
    PatchChildState,
    RecordLoss,
    RequestCancel,
    Resume,
    Terminate,
)
from stepstone_operator.decide import ForkSource, decide
from stepstone_operator.status import render
from tests.unit._operator_fixtures import NOW, SPEC, ago, db, ended, observed, pod, run_view


def kinds(plan: object) -> list[str]:
    return [type(a).__name__ for a in plan.actions]  # type: ignore[attr-defined]


def test_a_new_run_gets_its_row_then_its_first_pod() -> None:
    plan = decide(observed())
    assert isinstance(plan.actions[0], CreateRun) and plan.again
    plan = decide(observed(record=db(RunStatus.PENDING, epoch=0)))
    assert plan.actions == [LaunchPod(0)]


def test_a_missing_workflow_waits_with_a_condition() -> None:
    plan = decide(observed(workflow=None))
    assert plan.actions == []
    assert plan.accepted[:2] == (False, "WorkflowNotFound")
    assert plan.requeue_after is not None


def test_input_that_fails_the_schema_fails_before_anything_starts() -> None:
    spec = SPEC.model_copy(update={"input_schema": {"type": "object", "required": ["id"]}})
    plan = decide(observed(workflow=spec, run=run_view(input={})))
    assert plan.actions == [] and plan.early_failure is not None
    assert render(observed(workflow=spec), plan)["phase"] == "Failed"
    # and it stays failed: the input is immutable
    again = decide(observed(workflow=spec, run=run_view({"phase": "Failed"}, input={})))
    assert again.actions == []


def test_forks_wait_for_their_source_then_copy_it() -> None:
    run = run_view(forkFrom={"run": "src", "step": 3})
    assert decide(observed(run=run)).accepted[1] == "ForkSourceNotFound"
    started = ForkSource("src", "ns/src@1", None)
    assert decide(observed(run=run, fork_source=started)).accepted[1] == "ForkSourceNotStarted"
    early = ForkSource("src", "ns/src@1", db(RunStatus.RUNNING, completed_steps=1))
    assert decide(observed(run=run, fork_source=early)).accepted[1] == "ForkSourceNotReady"
    short = ForkSource("src", "ns/src@1", db(RunStatus.SUCCEEDED, completed_steps=1))
    assert decide(observed(run=run, fork_source=short)).accepted[1] == "InvalidFork"
    ready = ForkSource("src", "ns/src@1", db(RunStatus.SUCCEEDED, completed_steps=5))
    plan = decide(observed(run=run, fork_source=ready))
    assert plan.actions == [ForkRun("ns/src@1", 3, "wf", SPEC)]


@pytest.mark.parametrize(
    ("case", "record", "pods", "expected"),
    [
        ("healthy", db(), (pod(),), []),
        ("pod deleted", db(), (pod(deleting=True),), ["RecordLoss"]),
        ("pod gone while running", db(), (), ["RecordLoss"]),
        ("pod ended badly", db(), (pod(terminated=ended(1)),), ["RecordLoss"]),
        (
            "loss recorded: delete and relaunch at once",
            db(recoveries=1, last_failure={"podName": "order-42-1", "at": NOW.isoformat()}),
            (pod(terminated=ended(137)),),
            ["DeletePod", "LaunchPod"],
        ),
        (
            "second loss: back off",
            db(recoveries=2, last_failure={"podName": "order-42-1", "at": NOW.isoformat()}),
            (pod(deleting=True),),
            [],
        ),
        ("budget spent", db(recoveries=5), (pod(deleting=True),), ["FailRun"]),
        (
            "stale pod of an old attempt",
            db(epoch=2, runner="order-42-2"),
            (pod(1), pod(2)),
            ["DeletePod"],
        ),
        (
            "sleeping, pod released",
            db(RunStatus.SLEEPING, wake_at=NOW + timedelta(hours=1)),
            (pod(terminated=ended(12)),),
            ["DeletePod"],
        ),
        ("sleeping, woke", db(RunStatus.SLEEPING, wake_at=ago(1)), (), ["LaunchPod"]),
        ("waiting without a timeout", db(RunStatus.WAITING), (), []),
        (
            "succeeded: clean up",
            db(RunStatus.SUCCEEDED, finished_at=ago(1)),
            (pod(terminated=ended(0, "Completed")),),
            ["DeletePod"],
        ),
    ],
)
def test_running_runs(
    case: str, record: object, pods: tuple[object, ...], expected: list[str]
) -> None:
    plan = decide(observed(record=record, pods=pods))  # type: ignore[arg-type]
    assert kinds(plan) == expected, case


def test_backoff_doubles_from_the_second_recovery() -> None:
    failure = {"podName": "order-42-1", "at": NOW.isoformat()}
    for recoveries, wait in ((1, 0), (2, 5), (3, 10), (4, 20)):
        plan = decide(
            observed(
                record=db(recoveries=recoveries, last_failure=failure), pods=(pod(deleting=True),)
            )
        )
        if wait == 0:
            assert kinds(plan) == ["LaunchPod"]
        else:
            assert plan.next_attempt_at == NOW + timedelta(seconds=wait)
            assert kinds(plan) == []


def test_a_lost_pod_is_counted_once() -> None:
    plan = decide(observed(record=db(), pods=(pod(deleting=True),)))
    [action] = plan.actions
    assert isinstance(action, RecordLoss) and action.loss.reason == "PodDeleted"
    recorded = db(recoveries=1, last_failure={"podName": "order-42-1", "at": NOW.isoformat()})
    again = decide(observed(record=recorded, pods=(pod(deleting=True),)))
    assert not any(isinstance(a, RecordLoss) for a in again.actions)


@pytest.mark.parametrize(
    ("case", "record", "pods", "expected"),
    [
        ("running: request", db(), (pod(),), [RequestCancel()]),
        ("pending: request", db(RunStatus.PENDING), (), [RequestCancel()]),
        (
            "requested: SIGTERM the pod with the grace period",
            db(cancel_requested_at=ago(1)),
            (pod(),),
            [
                DeletePod(
                    "order-42-1",
                    SPEC.cancel_grace_period_seconds,
                    "cancel: SIGTERM delivers Cancelled into the running step",
                )
            ],
        ),
        ("pod being deleted: wait", db(cancel_requested_at=ago(1)), (pod(deleting=True),), []),
        ("pod gone: finish it", db(cancel_requested_at=ago(1)), (), [CompleteCancel()]),
        ("done", db(RunStatus.CANCELLED), (), []),
    ],
)
def test_cancel(
    case: str, record: object, pods: tuple[object, ...], expected: list[object]
) -> None:
    plan = decide(
        observed(
            run=run_view(state="Cancelled"),
            record=record,  # type: ignore[arg-type]
            pods=pods,
        )
    )
    assert plan.actions == expected, case


def test_terminate_then_resume() -> None:
    plan = decide(observed(run=run_view(state="Terminated"), record=db(), pods=(pod(),)))
    assert plan.actions == [Terminate()]
    plan = decide(
        observed(run=run_view(state="Terminated"), record=db(RunStatus.TERMINATED), pods=(pod(),))
    )
    assert kinds(plan) == ["DeletePod"] and plan.actions[0].grace_seconds == 0  # type: ignore
    resumed = decide(
        observed(run=run_view({"observedState": "Terminated"}), record=db(RunStatus.TERMINATED))
    )
    assert isinstance(resumed.actions[0], Resume)
    # a run cancelled some other way is not resumed by a spec that never said Cancelled
    other = decide(
        observed(run=run_view({"observedState": "Running"}), record=db(RunStatus.CANCELLED))
    )
    assert not any(isinstance(a, Resume) for a in other.actions)


def test_raising_retry_resumes_a_failed_run_only() -> None:
    failed = db(RunStatus.FAILED)
    plan = decide(observed(run=run_view({"observedRetry": 0}, retry=1), record=failed))
    assert isinstance(plan.actions[0], Resume)
    same = decide(observed(run=run_view({"observedRetry": 1}, retry=1), record=failed))
    assert same.actions == []


def test_forks_requested_by_patch_are_created_once() -> None:
    run = run_view(forks=[{"name": "order-42-b", "fromStep": 3}])
    plan = decide(observed(run=run, record=db(), pods=(pod(),)))
    assert [type(a) for a in plan.actions] == [CreateFork]
    plan = decide(
        observed(run=run, record=db(), pods=(pod(),), existing_forks=frozenset({"order-42-b"}))
    )
    assert plan.actions == []


def test_deadline_and_ttl() -> None:
    spec = SPEC.model_copy(update={"active_deadline_seconds": 30})
    late = db(started_at=ago(31), pinned={"workflow": "wf", "spec": spec.wire()})
    assert isinstance(decide(observed(record=late, pods=(pod(),))).actions[0], FailRun)
    run = run_view(ttlSecondsAfterFinished=10)
    assert decide(
        observed(run=run, record=db(RunStatus.SUCCEEDED, finished_at=ago(11)))
    ).actions == [DeleteRunObject("ttlSecondsAfterFinished=10 elapsed")]
    waiting = decide(observed(run=run, record=db(RunStatus.SUCCEEDED, finished_at=ago(4))))
    assert waiting.actions == [] and waiting.requeue_after == pytest.approx(6)


def test_status_mirrors_the_run() -> None:
    o = observed(record=db(), pods=(pod(),))
    status = render(o, decide(o))
    assert status["phase"] == "Running"
    assert status["currentStep"]["number"] == 3 and status["completedSteps"] == 2
    assert status["podName"] == "order-42-1" and status["attempt"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "Unknown"
    big = db(RunStatus.SUCCEEDED, output={"blob": "x" * 5000}, finished_at=ago(1))
    o = observed(record=big)
    status = render(o, decide(o))
    assert status.get("resultTruncated") is True and "result" not in status
    o = observed(record=db(cancel_requested_at=ago(1)), pods=(pod(),))
    assert render(o, decide(o))["phase"] == "Cancelling"


def test_children_get_a_workflowrun_and_follow_a_cancel() -> None:
    from stepstone.contract import child_run_id

    child = db(
        RunStatus.PENDING,
        run_id=child_run_id("ns/order-42@01234567", 2),
        parent_run_id="ns/order-42@01234567",
        entrypoint="m:child",
        epoch=0,
    )
    plan = decide(observed(record=db(), pods=(pod(),), children=(child,)))
    assert plan.actions == [CreateChild(child.run_id, "order-42-c2", "m:child")]
    plan = decide(
        observed(
            run=run_view(state="Cancelled"),
            record=db(),
            pods=(pod(),),
            children=(child,),
            child_states={"order-42-c2": "Running"},
        )
    )
    assert PatchChildState("order-42-c2", "Cancelled") in plan.actions


def test_child_run_ids_name_the_child_workflowrun() -> None:
    from stepstone.contract import child_run_id
    from stepstone_operator.views import key_for_run_id

    child = child_run_id("ns/" + "p" * 55 + "@abcd1234", 12)
    assert key_for_run_id(child) == ("ns", "p" * 48 + "-c12")
    assert child_run_id("local-run", 3) == "local-run/child-3"
    assert key_for_run_id("ns/x@1234/child-3") is None


def test_a_run_failed_before_it_started_stays_failed() -> None:
    failed = run_view(
        {
            "phase": "Failed",
            "error": {"type": "InputInvalid", "message": "bad"},
            "conditions": [
                {"type": "Accepted", "status": "False", "reason": "InputInvalid", "message": "bad"}
            ],
        }
    )
    o = observed(run=failed)
    plan = decide(o)
    assert plan.actions == [] and plan.early_failure == {"type": "InputInvalid", "message": "bad"}
    status = render(o, plan)
    assert status["phase"] == "Failed" and status["error"]["type"] == "InputInvalid"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"v": "a\x00b"}, "spec.input.v contains a NUL character"),
        ({"a\x00": 1}, "has a key with a NUL character"),
        ({"v": [["x\x00"]]}, "spec.input.v.0.0 contains a NUL"),
    ],
)
def test_input_postgres_cannot_store_fails_clearly(value: dict[str, object], says: str) -> None:
    plan = decide(observed(run=run_view(input=value)))
    assert plan.actions == [] and plan.accepted[1] == "InputInvalid"
    assert says in plan.accepted[2]


def test_input_nested_too_deep_fails_clearly() -> None:
    from stepstone_operator.decide import MAX_INPUT_DEPTH

    def nested(depth: int) -> dict[str, object]:
        value: dict[str, object] = {}
        for _ in range(depth):
            value = {"n": value}
        return value

    assert decide(observed(run=run_view(input=nested(100)))).accepted[0]
    plan = decide(observed(run=run_view(input=nested(MAX_INPUT_DEPTH + 5))))
    assert plan.accepted[1] == "InputInvalid" and "nested more than" in plan.accepted[2]


def test_a_fork_cycle_fails_instead_of_waiting_forever() -> None:
    run = run_view(forkFrom={"run": "b", "step": 1})
    source = ForkSource("b", "ns/b@1", None, forks_from="order-42")
    plan = decide(observed(run=run, fork_source=source))
    assert plan.accepted[1] == "InvalidFork" and "cycle" in plan.accepted[2]


def test_a_fork_name_taken_by_an_unrelated_run_is_reported_not_claimed() -> None:
    run = run_view(forks=[{"name": "other", "fromStep": 1}])
    o = observed(run=run, record=db(), pods=(pod(),), taken_fork_names=frozenset({"other"}))
    plan = decide(o)
    assert not any(isinstance(a, CreateFork) for a in plan.actions)
    conditions = {c["type"]: c for c in render(o, plan)["conditions"]}
    assert conditions["ForksCreated"]["reason"] == "ForkNameTaken"
