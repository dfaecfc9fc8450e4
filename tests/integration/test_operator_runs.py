"""The operator on the local control plane, through kubectl: runs complete, bad input gets a
condition, workflow code that raises fails the run (not pod loss)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import run_manifest, status_of, wait_phase, workflow_manifest
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle
from tests.workflows import effects, orders

pytestmark = pytest.mark.cluster


def test_a_run_completes_with_its_result_in_status(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest("orders", "tests.workflows.orders:pipeline", stepstone_db),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("order-1", "orders", {"order_id": 1}), namespace=run_ns)
    status = wait_phase(cluster, run_ns, "order-1", "Succeeded")
    assert status["result"] == {"order_id": 1, "steps": list(orders.STEPS)}
    assert (status["completedSteps"], status["attempt"], status["recoveries"]) == (5, 1, 0)
    assert status["pinned"]["entrypoint"] == "tests.workflows.orders:pipeline"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Accepted"]["status"] == "True"
    assert effects.counts(stepstone_db, status["runId"]) == dict.fromkeys(orders.STEPS, 1)
    # the finished run's pod is removed once its evidence is in
    wait_for(
        lambda: not cluster.objects("pod", run_ns, "stepstone.io/run=order-1"),
        30,
        description="the runner pod removed",
    )
    table = cluster.kubectl("get", "wfrun", "-n", run_ns).stdout
    assert table.split("\n")[0].split() == [
        "NAME",
        "PHASE",
        "STEP",
        "DONE",
        "ATTEMPT",
        "RECOVERIES",
        "AGE",
    ]
    events = cluster.kubectl(
        "get", "events", "-n", run_ns, "--field-selector", "involvedObject.name=order-1"
    ).stdout
    for reason in ("Started", "PodCreated", "Succeeded"):
        assert reason in events
    waited = cluster.kubectl(
        "wait", "--for=condition=Succeeded", "wfrun/order-1", "-n", run_ns, "--timeout=5s"
    )
    assert "condition met" in waited.stdout


def test_workflow_code_that_raises_fails_the_run_without_recovery(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest("buggy", "tests.workflows.misc:buggy", stepstone_db), namespace=run_ns
    )
    cluster.apply(run_manifest("buggy-1", "buggy"), namespace=run_ns)
    status = wait_phase(cluster, run_ns, "buggy-1", "Failed")
    assert status["error"] == {"type": "RuntimeError", "message": "the workflow's own bug"}
    assert status["recoveries"] == 0 and status["attempt"] == 1
    failed = {c["type"]: c for c in status["conditions"]}["Succeeded"]
    assert (failed["status"], failed["reason"]) == ("False", "RuntimeError")


def test_a_missing_workflow_waits_with_a_condition_then_runs(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(run_manifest("early", "late-workflow", {"value": 3}), namespace=run_ns)

    def waiting() -> dict[str, str] | None:
        status = status_of(cluster, run_ns, "early")
        cond = {c["type"]: c for c in status.get("conditions", [])}.get("Accepted")
        return cond if cond and cond["reason"] == "WorkflowNotFound" else None

    cond = wait_for(waiting, 30, description="the WorkflowNotFound condition")
    assert cond["status"] == "False"
    assert "Workflow 'late-workflow' not found" in cond["message"]
    assert status_of(cluster, run_ns, "early")["phase"] == "Pending"
    cluster.apply(
        workflow_manifest("late-workflow", "tests.workflows.misc:echo", stepstone_db),
        namespace=run_ns,
    )
    assert wait_phase(cluster, run_ns, "early", "Succeeded")["result"] == 3


def test_input_that_fails_the_schema_fails_the_run_with_the_errors(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    schema = {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "integer", "minimum": 1}},
    }
    cluster.apply(
        workflow_manifest(
            "strict", "tests.workflows.orders:pipeline", stepstone_db, inputSchema=schema
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("bad-input", "strict", {"order_id": "forty-two"}), namespace=run_ns)
    status = wait_phase(cluster, run_ns, "bad-input", "Failed")
    accepted = {c["type"]: c for c in status["conditions"]}["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "InputInvalid")
    assert "order_id: 'forty-two' is not of type 'integer'" in accepted["message"]
    assert not cluster.objects("pod", run_ns)


def test_progress_reaches_status_within_two_seconds(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    """Each step's number shows in status.currentStep within 2 s of the step starting."""
    import time

    import psycopg

    cluster.apply(
        workflow_manifest("slow", "tests.workflows.misc:slow_steps", stepstone_db), namespace=run_ns
    )
    cluster.apply(run_manifest("slow-1", "slow", {"count": 4, "seconds": 2.5}), namespace=run_ns)
    seen: dict[int, float] = {}

    def watch() -> bool:
        step = (status_of(cluster, run_ns, "slow-1").get("currentStep") or {}).get("number")
        if step is not None:
            seen.setdefault(step, time.time())
        return status_of(cluster, run_ns, "slow-1").get("phase") == "Succeeded"

    wait_for(watch, 60, 0.1, description="slow-1 to finish while watching its status")
    run_id = status_of(cluster, run_ns, "slow-1")["runId"]
    with psycopg.connect(stepstone_db) as conn:
        started = dict(
            conn.execute(
                "SELECT step, extract(epoch FROM at) FROM test_effects WHERE run_id = %s", (run_id,)
            ).fetchall()
        )
    assert set(seen) == {1, 2, 3, 4}, seen
    lags = {n: seen[n] - float(started[n]) for n in seen}
    assert all(lag < 2.0 for lag in lags.values()), lags
