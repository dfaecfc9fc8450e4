"""Cancel, terminate, resume, retry and fork through the WorkflowRun spec, from each phase
where they make sense, idempotent, and with invalid patches refused by the API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from stepstone.store import Store
from tests.integration.conftest import run_manifest, status_of, wait_phase, workflow_manifest
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle, CommandFailed
from tests.substrate.tools import REPO
from tests.workflows import effects, orders

pytestmark = pytest.mark.cluster


def patch(cluster: ClusterHandle, ns: str, name: str, spec: dict[str, Any]) -> str:
    out = cluster.kubectl(
        "patch", "wfrun", name, "-n", ns, "--type", "merge", "-p", json.dumps({"spec": spec})
    )
    return out.stdout.strip()


def stepstone_cli(cluster: ClusterHandle, ns: str, db: str, *args: str) -> str:
    """The `stepstone` CLI's cluster form, as a user runs it."""
    env = {**os.environ, **cluster.env, "STEPSTONE_DATABASE_URL": db}
    result = subprocess.run(
        [sys.executable, "-m", "stepstone", "--kube", "-n", ns, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def blocked(
    cluster: ClusterHandle,
    ns: str,
    db: str,
    name: str,
    block_at: str = "charge_card",
    block_seconds: float = 60.0,
) -> str:
    """Start a five-step run whose `block_at` step runs long on attempt 1."""
    cluster.apply(workflow_manifest("orders", "tests.workflows.orders:pipeline", db), namespace=ns)
    cluster.apply(
        workflow_manifest("orders-v2", "tests.workflows.orders:pipeline_v2", db), namespace=ns
    )
    run_input = {"order_id": 3, "block_at": block_at, "block_seconds": block_seconds}
    cluster.apply(run_manifest(name, "orders", run_input), namespace=ns)
    run_id: str = wait_for(
        lambda: status_of(cluster, ns, name).get("runId"), 30, description=f"{name}'s run id"
    )
    wait_for(
        lambda: effects.counts(db, run_id).get(block_at) == 1,
        60,
        description=f"{name} inside {block_at}",
    )
    return run_id


def steps_of(db: str, run_id: str) -> list[tuple[int, str, bool]]:
    store = Store.connect(db)
    try:
        return [(s.step, s.name, s.cleanup) for s in store.load_steps(run_id)]
    finally:
        store.close()


def test_cancel_while_a_long_step_runs_records_its_cleanup(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    run_id = blocked(cluster, run_ns, stepstone_db, "c1")
    patch(cluster, run_ns, "c1", {"state": "Cancelled"})
    wait_for(
        lambda: status_of(cluster, run_ns, "c1").get("phase") in ("Cancelling", "Cancelled"),
        10,
        0.1,
        description="Cancelling",
    )
    status = wait_phase(cluster, run_ns, "c1", "Cancelled")
    assert steps_of(stepstone_db, run_id) == [
        (1, "validate_order", False),
        (2, "reserve_stock", False),
        (4, "release_stock", True),
    ]
    assert effects.counts(stepstone_db, run_id)["release_stock"] == 1
    cond = {c["type"]: c for c in status["conditions"]}["Succeeded"]
    assert (cond["status"], cond["reason"]) == ("False", "Cancelled")
    # the same patch again changes nothing
    generation = status["observedGeneration"]
    assert patch(cluster, run_ns, "c1", {"state": "Cancelled"}).endswith("(no change)")
    after = status_of(cluster, run_ns, "c1")
    assert (after["phase"], after["attempt"], after["observedGeneration"]) == (
        "Cancelled",
        status["attempt"],
        generation,
    )


def test_cancel_a_pending_run_then_resume_it(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(run_manifest("p1", "not-yet", {"value": 1}), namespace=run_ns)
    wait_phase(cluster, run_ns, "p1", "Pending")
    patch(cluster, run_ns, "p1", {"state": "Cancelled"})
    cluster.apply(
        workflow_manifest("not-yet", "tests.workflows.misc:echo", stepstone_db), namespace=run_ns
    )
    wait_phase(cluster, run_ns, "p1", "Cancelled")
    patch(cluster, run_ns, "p1", {"state": "Running"})
    assert wait_phase(cluster, run_ns, "p1", "Succeeded")["result"] == 1


def test_terminate_while_a_step_runs_then_resume_reruns_that_step_only(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    run_id = blocked(cluster, run_ns, stepstone_db, "t1")
    out = stepstone_cli(cluster, run_ns, stepstone_db, "terminate", "t1")
    assert "patched" in out
    wait_phase(cluster, run_ns, "t1", "Terminated")
    wait_for(
        lambda: not cluster.objects("pod", run_ns, "stepstone.io/run=t1"),
        30,
        description="t1's pod gone",
    )
    assert [s[0] for s in steps_of(stepstone_db, run_id)] == [1, 2]  # step 3 unrecorded
    out = stepstone_cli(cluster, run_ns, stepstone_db, "resume", "t1")
    assert "Succeeded after 5 steps" in out
    assert effects.counts(stepstone_db, run_id) == {
        **dict.fromkeys(orders.STEPS, 1),
        "charge_card": 2,
    }


def test_terminate_while_cancelling(cluster: ClusterHandle, run_ns: str, stepstone_db: str) -> None:
    """A cleanup that takes long (a step deaf to heartbeats, a long grace period) is cut
    short by Terminated."""
    cluster.apply(
        workflow_manifest(
            "slow-cancel",
            "tests.workflows.misc:slow_to_cancel",
            stepstone_db,
            cancelGracePeriodSeconds=120,
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("ct2", "slow-cancel", {"seconds": 120}), namespace=run_ns)
    wait_phase(cluster, run_ns, "ct2", "Running")
    run_id = status_of(cluster, run_ns, "ct2")["runId"]
    wait_for(
        lambda: effects.counts(stepstone_db, run_id).get("stubborn") == 1,
        30,
        description="the first step running",
    )
    patch(cluster, run_ns, "ct2", {"state": "Cancelled"})
    wait_for(
        lambda: effects.counts(stepstone_db, run_id).get("long_cleanup") == 1,
        30,
        description="the long cleanup running",
    )
    assert status_of(cluster, run_ns, "ct2")["phase"] == "Cancelling"
    patch(cluster, run_ns, "ct2", {"state": "Terminated"})
    wait_phase(cluster, run_ns, "ct2", "Terminated", timeout=30)
    assert [name for _, name, _ in steps_of(stepstone_db, run_id)] == []  # cleanup cut short


def test_resume_a_failed_run_by_raising_retry(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest("recovers", "tests.workflows.misc:recovers_on_retry", stepstone_db),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("f1", "recovers"), namespace=run_ns)
    failed = wait_phase(cluster, run_ns, "f1", "Failed")
    assert failed["error"]["message"] == "upstream outage"
    patch(cluster, run_ns, "f1", {"retry": 1})
    done = wait_phase(cluster, run_ns, "f1", "Succeeded")
    assert done["result"] == ["before", "recovered", "after"]
    assert effects.counts(stepstone_db, done["runId"]) == {
        "before": 1,
        "fails_first_time": 2,
        "after": 1,
    }
    assert patch(cluster, run_ns, "f1", {"retry": 1}).endswith("(no change)")


def test_fork_from_step_3_reruns_steps_3_to_5(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest("orders", "tests.workflows.orders:pipeline", stepstone_db),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("src", "orders", {"order_id": 5}), namespace=run_ns)
    source = wait_phase(cluster, run_ns, "src", "Succeeded")
    before = steps_of(stepstone_db, source["runId"])
    cluster.apply(
        run_manifest("src-b", "orders", {"order_id": 5}, forkFrom={"run": "src", "step": 3}),
        namespace=run_ns,
    )
    fork = wait_phase(cluster, run_ns, "src-b", "Succeeded")
    assert effects.counts(stepstone_db, fork["runId"]) == {"charge_card": 1, "ship": 1, "notify": 1}
    assert steps_of(stepstone_db, source["runId"]) == before
    assert status_of(cluster, run_ns, "src")["phase"] == "Succeeded"
    # and by patch: spec.forks on the source creates the run
    patch(cluster, run_ns, "src", {"forks": [{"name": "src-c", "fromStep": 4}]})
    forked = wait_phase(cluster, run_ns, "src-c", "Succeeded")
    assert effects.counts(stepstone_db, forked["runId"]) == {"ship": 1, "notify": 1}
    wait_for(
        lambda: status_of(cluster, run_ns, "src").get("forks") == ["src-c"],
        10,
        description="the source's status lists its fork",
    )


def test_fork_onto_changed_code_fails_only_when_a_reused_step_differs(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest("orders", "tests.workflows.orders:pipeline", stepstone_db),
        namespace=run_ns,
    )
    cluster.apply(
        workflow_manifest("orders-v2", "tests.workflows.orders:pipeline_v2", stepstone_db),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("v1", "orders", {"order_id": 5}), namespace=run_ns)
    wait_phase(cluster, run_ns, "v1", "Succeeded")
    cluster.apply(
        run_manifest("v1-fix", "orders-v2", forkFrom={"run": "v1", "step": 3}), namespace=run_ns
    )
    assert wait_phase(cluster, run_ns, "v1-fix", "Succeeded")["result"]["version"] == 2
    cluster.apply(
        run_manifest("v1-bad", "orders-v2", forkFrom={"run": "v1", "step": 4}), namespace=run_ns
    )
    bad = wait_phase(cluster, run_ns, "v1-bad", "Failed")
    assert bad["error"]["type"] == "stepstone.errors.NonDeterminismError"
    assert "step 3 was recorded as 'charge_card'" in bad["error"]["message"]


def test_fork_from_a_cancelled_and_from_a_running_source(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    # forks inherit the input, so their own `ship` blocks too: keep the block short
    blocked(cluster, run_ns, stepstone_db, "live", block_at="ship", block_seconds=6)
    out = stepstone_cli(
        cluster,
        run_ns,
        stepstone_db,
        "fork",
        "live",
        "--from-step",
        "3",
        "--run-id",
        "live-b",
        "--workflow",
        "orders-v2",
        "--detach",
    )
    assert "live-b created" in out
    patch(cluster, run_ns, "live", {"state": "Cancelled"})
    wait_phase(cluster, run_ns, "live", "Cancelled")
    assert wait_phase(cluster, run_ns, "live-b", "Succeeded")["result"]["version"] == 2
    cluster.apply(
        run_manifest("live-c", "orders", forkFrom={"run": "live", "step": 4}), namespace=run_ns
    )
    assert wait_phase(cluster, run_ns, "live-c", "Succeeded")


def test_a_fork_of_a_missing_run_or_past_the_record_gets_a_condition(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest("orders", "tests.workflows.orders:pipeline", stepstone_db),
        namespace=run_ns,
    )
    cluster.apply(
        run_manifest("orphan", "orders", forkFrom={"run": "nobody", "step": 2}), namespace=run_ns
    )

    def reason() -> str | None:
        conds = status_of(cluster, run_ns, "orphan").get("conditions") or []
        return next((c["reason"] for c in conds if c["type"] == "Accepted"), None)

    assert wait_for(lambda: reason() == "ForkSourceNotFound", 30, description="the condition")
    cluster.apply(run_manifest("short", "orders", {"order_id": 1}), namespace=run_ns)
    wait_phase(cluster, run_ns, "short", "Succeeded")
    cluster.apply(
        run_manifest("too-far", "orders", forkFrom={"run": "short", "step": 9}), namespace=run_ns
    )
    failed = wait_phase(cluster, run_ns, "too-far", "Failed")
    assert failed["error"]["type"] == "InvalidFork"
    assert "fork it from step 1 to 6, not 9" in failed["error"]["message"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"forkFrom": {"run": "x", "step": 2}}, "spec.forkFrom is immutable"),
        ({"state": "Paused"}, 'Unsupported value: "Paused"'),
        ({"retry": -1}, "spec.retry in body should be greater than or equal to 0"),
        ({"input": {"order_id": 2}}, "spec.input is immutable"),
        ({"workflowRef": {"name": "other"}}, "spec.workflowRef is immutable"),
    ],
)
def test_invalid_patches_are_refused_by_the_api_server(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str, spec: dict[str, Any], message: str
) -> None:
    cluster.apply(run_manifest("target", "nothing", {"order_id": 1}), namespace=run_ns)
    with pytest.raises(CommandFailed) as refused:
        patch(cluster, run_ns, "target", spec)
    assert message in refused.value.stderr
