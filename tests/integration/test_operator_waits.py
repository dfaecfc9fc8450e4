"""Durable sleep, events and child workflows on the local control plane: while a run sleeps or
waits it holds no pod; it continues when the timer fires or the event arrives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepstone.contract import child_run_id
from stepstone.store import Store
from tests.integration.conftest import run_manifest, status_of, wait_phase, workflow_manifest
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle
from tests.workflows import effects

pytestmark = pytest.mark.cluster

PARK_AFTER = 2  # seconds: longer sleeps and waits release the pod


def _pods(cluster: ClusterHandle, ns: str, run: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.objects("pod", ns, f"stepstone.io/run={run}")
        if p.get("status", {}).get("phase") in ("Pending", "Running")
        and not p["metadata"].get("deletionTimestamp")
    ]


def event(
    cluster: ClusterHandle, ns: str, name: str, run: str, payload: Any, key: str | None = None
) -> None:
    spec: dict[str, Any] = {"runRef": {"name": run}, "event": "approval", "payload": payload}
    if key:
        spec["key"] = key
    cluster.apply(
        {
            "apiVersion": "stepstone.io/v1alpha1",
            "kind": "WorkflowEvent",
            "metadata": {"name": name},
            "spec": spec,
        },
        namespace=ns,
    )


def event_status(cluster: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    return dict((cluster.get("workflowevent", name, ns) or {}).get("status") or {})


def approval_workflow(cluster: ClusterHandle, ns: str, db: str) -> None:
    cluster.apply(
        workflow_manifest(
            "approval", "tests.workflows.misc:approval", db, suspendAfterSeconds=PARK_AFTER
        ),
        namespace=ns,
    )


def test_a_long_sleep_releases_the_pod_and_the_run_completes_after_the_wake_time(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest(
            "sleepy", "tests.workflows.misc:sleeper", stepstone_db, suspendAfterSeconds=PARK_AFTER
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("nap", "sleepy", {"seconds": 12}), namespace=run_ns)
    status = wait_phase(cluster, run_ns, "nap", "Sleeping", timeout=60)
    wake_at = status["wakeAt"]
    wait_for(lambda: not _pods(cluster, run_ns, "nap"), 30, description="no pod while asleep")
    done = wait_phase(cluster, run_ns, "nap", "Succeeded", timeout=60)
    assert done["finishedAt"] >= wake_at
    assert effects.counts(stepstone_db, done["runId"]) == {"before_sleep": 1, "after_sleep": 1}
    assert done["attempt"] == 2 and done["recoveries"] == 0


def test_events_before_during_after_and_twice(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    approval_workflow(cluster, run_ns, stepstone_db)
    # before: the event exists before the run even starts
    event(cluster, run_ns, "early", "r-before", {"ok": "early"})
    cluster.apply(run_manifest("r-before", "approval"), namespace=run_ns)
    assert wait_phase(cluster, run_ns, "r-before", "Succeeded")["result"] == {"ok": "early"}
    # during: the run waits with no pod, then the event arrives
    cluster.apply(run_manifest("r-during", "approval"), namespace=run_ns)
    wait_phase(cluster, run_ns, "r-during", "Waiting", timeout=60)
    assert status_of(cluster, run_ns, "r-during")["waitingFor"] == "approval"
    wait_for(lambda: not _pods(cluster, run_ns, "r-during"), 30, description="no pod while waiting")
    event(cluster, run_ns, "late", "r-during", {"ok": "during"})
    done = wait_phase(cluster, run_ns, "r-during", "Succeeded")
    assert done["result"] == {"ok": "during"}
    wait_for(
        lambda: event_status(cluster, run_ns, "late").get("consumedByStep") == 2,
        30,
        description="the event's status naming the step that took it",
    )
    # after: the run has finished; the event is stored but nothing takes it
    event(cluster, run_ns, "too-late", "r-during", {"ok": "after"})
    after = wait_for(
        lambda: (
            event_status(cluster, run_ns, "too-late").get("delivered")
            and event_status(cluster, run_ns, "too-late")
        ),
        30,
        description="delivered",
    )
    assert "has ended" in after["conditions"][0]["message"]
    assert status_of(cluster, run_ns, "r-during")["result"] == {"ok": "during"}
    # twice: two objects with the same key reach the run once
    cluster.apply(
        workflow_manifest(
            "two",
            "tests.workflows.misc:two_approvals",
            stepstone_db,
            suspendAfterSeconds=PARK_AFTER,
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("r-twice", "two"), namespace=run_ns)
    event(cluster, run_ns, "dup-1", "r-twice", {"n": 1}, key="same")
    event(cluster, run_ns, "dup-2", "r-twice", {"n": 1}, key="same")
    wait_for(
        lambda: event_status(cluster, run_ns, "dup-2").get("delivered"),
        30,
        description="the duplicate processed",
    )
    assert "not" in event_status(cluster, run_ns, "dup-2")["conditions"][0]["message"]
    wait_phase(cluster, run_ns, "r-twice", "Waiting", timeout=60)  # still waits for a 2nd
    event(cluster, run_ns, "second", "r-twice", {"n": 2})
    assert wait_phase(cluster, run_ns, "r-twice", "Succeeded")["result"] == [{"n": 1}, {"n": 2}]


def test_a_wait_that_times_out(cluster: ClusterHandle, run_ns: str, stepstone_db: str) -> None:
    approval_workflow(cluster, run_ns, stepstone_db)
    cluster.apply(run_manifest("r-timeout", "approval", {"timeout": 6}), namespace=run_ns)
    wait_phase(cluster, run_ns, "r-timeout", "Waiting", timeout=60)
    done = wait_phase(cluster, run_ns, "r-timeout", "Succeeded", timeout=60)
    assert "no event 'approval' arrived within 6 s" in done["result"]["timeout"]


@pytest.mark.parametrize("verb", ["Cancelled", "Terminated"])
def test_cancel_and_terminate_a_sleeping_and_a_waiting_run(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str, verb: str
) -> None:
    approval_workflow(cluster, run_ns, stepstone_db)
    cluster.apply(
        workflow_manifest(
            "sleepy", "tests.workflows.misc:sleeper", stepstone_db, suspendAfterSeconds=PARK_AFTER
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("s", "sleepy", {"seconds": 600}), namespace=run_ns)
    cluster.apply(run_manifest("w", "approval"), namespace=run_ns)
    wait_phase(cluster, run_ns, "s", "Sleeping", timeout=60)
    wait_phase(cluster, run_ns, "w", "Waiting", timeout=60)
    for name in ("s", "w"):
        cluster.kubectl(
            "patch",
            "wfrun",
            name,
            "-n",
            run_ns,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"state": verb}}),
        )
    for name in ("s", "w"):
        wait_phase(cluster, run_ns, name, verb, timeout=20)
        assert not _pods(cluster, run_ns, name)


def test_a_child_run_is_started_once_across_a_parent_crash(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    """The parent's pod dies right after the step that started the child is recorded; the
    relaunched parent replays it and waits for the same child."""
    cluster.apply(
        workflow_manifest(
            "family",
            "tests.workflows.family:parent",
            stepstone_db,
            extra_env={"STEPSTONE_CRASH_AT": "after_record:2"},
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("dad", "family", {"x": 5}), namespace=run_ns)
    done = wait_phase(cluster, run_ns, "dad", "Succeeded", timeout=120)
    child_id = child_run_id(done["runId"], 2)
    assert done["result"] == {"child": child_id, "result": 50}
    assert done["lastFailure"]["reason"] == "RunnerCrashed" and done["recoveries"] == 1
    children = cluster.objects("workflowrun", run_ns, "stepstone.io/parent=dad")
    assert [c["metadata"]["name"] for c in children] == ["dad-c2"]
    owner = children[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("WorkflowRun", "dad")
    assert children[0]["status"]["phase"] == "Succeeded"
    store = Store.connect(stepstone_db)
    try:
        assert [c.run_id for c in store.list_runs(parent_run_id=done["runId"])] == [child_id]
    finally:
        store.close()
    assert effects.counts(stepstone_db, child_id) == {"child_work": 1}


def test_cancelling_a_parent_cancels_its_children(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest(
            "family", "tests.workflows.family:parent", stepstone_db, suspendAfterSeconds=PARK_AFTER
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("mum", "family", {"x": 1, "seconds": 600}), namespace=run_ns)
    wait_phase(cluster, run_ns, "mum-c2", "Running", timeout=60)
    wait_phase(cluster, run_ns, "mum", "Waiting", timeout=60)
    wait_for(
        lambda: not _pods(cluster, run_ns, "mum"),
        30,
        description="the parked parent's pod released",
    )
    cluster.kubectl(
        "patch",
        "wfrun",
        "mum",
        "-n",
        run_ns,
        "--type",
        "merge",
        "-p",
        '{"spec":{"state":"Cancelled"}}',
    )
    wait_phase(cluster, run_ns, "mum", "Cancelled", timeout=30)
    child = wait_phase(cluster, run_ns, "mum-c2", "Cancelled", timeout=60)
    spec = cluster.get("workflowrun", "mum-c2", run_ns)["spec"]  # type: ignore[index]
    assert spec["state"] == "Cancelled"
    assert child["runId"] == child_run_id(status_of(cluster, run_ns, "mum")["runId"], 2)
    wait_for(lambda: not _pods(cluster, run_ns, "mum-c2"), 30, description="the child's pod gone")


def test_the_cli_sends_an_event_as_a_workflowevent(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    from tests.integration.test_operator_verbs import stepstone_cli

    approval_workflow(cluster, run_ns, stepstone_db)
    cluster.apply(run_manifest("r-cli", "approval"), namespace=run_ns)
    wait_phase(cluster, run_ns, "r-cli", "Waiting", timeout=60)
    out = stepstone_cli(
        cluster,
        run_ns,
        stepstone_db,
        "send-event",
        "r-cli",
        "approval",
        "--payload",
        '{"by": "cli"}',
    )
    assert "workflowevent.stepstone.io/r-cli-approval-" in out
    assert wait_phase(cluster, run_ns, "r-cli", "Succeeded")["result"] == {"by": "cli"}
