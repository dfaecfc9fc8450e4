"""Pod loss on the local control plane, through kubectl and the test kubelet's faults: each
kind of loss leads to a new pod that replays the recorded steps, and side-effect counters in
Postgres prove every completed step ran once (the step in flight may run again)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from stepstone.store import Store
from tests.integration.conftest import run_manifest, status_of, wait_phase, workflow_manifest
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.operator import OperatorProcess
from tests.workflows import effects, orders

pytestmark = pytest.mark.cluster

ONCE = dict.fromkeys(orders.STEPS, 1)


def _start_blocked(
    cluster: ClusterHandle, ns: str, db: str, name: str, **workflow: Any
) -> dict[str, Any]:
    """A five-step run whose step 3 (charge_card) blocks on its first attempt."""
    cluster.apply(
        workflow_manifest("orders", "tests.workflows.orders:pipeline", db, **workflow), namespace=ns
    )
    cluster.apply(
        run_manifest(name, "orders", {"order_id": 7, "block_at": "charge_card"}), namespace=ns
    )
    status = wait_for(
        lambda: (s := status_of(cluster, ns, name)).get("runId") and s,
        30,
        description=f"{name} to have a run id",
    )
    wait_for(
        lambda: effects.counts(db, status["runId"]).get("charge_card") == 1,
        60,
        description="step 3 running in the first pod",
    )
    return status_of(cluster, ns, name)


def _pod(cluster: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    [pod] = [
        p
        for p in cluster.objects("pod", ns, f"stepstone.io/run={name}")
        if not p["metadata"].get("deletionTimestamp")
    ]
    return pod


def _recovered(
    cluster: ClusterHandle, ns: str, name: str, db: str, reason: str, charge_runs: int = 2
) -> dict[str, Any]:
    status = wait_phase(cluster, ns, name, "Succeeded", timeout=120)
    assert status["recoveries"] == 1, status
    assert status["lastFailure"]["reason"] == reason, status["lastFailure"]
    assert status["lastFailure"]["podName"] == f"{name}-1"
    assert status["attempt"] == 2
    assert effects.counts(db, status["runId"]) == {**ONCE, "charge_card": charge_runs}
    return status


def test_deleting_the_runner_pod_mid_step(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    _start_blocked(cluster, run_ns, stepstone_db, "deleted")
    cluster.kubectl("delete", "pod", "deleted-1", "-n", run_ns, "--wait=false")
    _recovered(cluster, run_ns, "deleted", stepstone_db, "PodDeleted")
    events = cluster.kubectl(
        "get", "events", "-n", run_ns, "--field-selector", "involvedObject.name=deleted"
    ).stdout
    assert "PodLost" in events


def test_killing_the_runner_process(
    cluster: ClusterHandle, kubelet: KubeletHandle, run_ns: str, stepstone_db: str
) -> None:
    _start_blocked(cluster, run_ns, stepstone_db, "killed")
    kubelet.kill_pod_process(run_ns, "killed-1", signal.SIGKILL)
    status = _recovered(cluster, run_ns, "killed", stepstone_db, "RunnerCrashed")
    assert status["lastFailure"]["exitCode"] == 137


def test_silencing_the_runner_node(
    cluster: ClusterHandle, kubelet: KubeletHandle, run_ns: str, stepstone_db: str
) -> None:
    """The node goes NotReady and Kubernetes evicts the pod; the new pod runs elsewhere while
    the old process, still alive on the partitioned node, is fenced and cannot record."""
    _start_blocked(cluster, run_ns, stepstone_db, "partitioned")
    node = _pod(cluster, run_ns, "partitioned")["spec"]["nodeName"]
    kubelet.silence_node(node)
    status = _recovered(cluster, run_ns, "partitioned", stepstone_db, "NodeLost")
    new_pod = cluster.get("pod", "partitioned-2", run_ns)
    assert new_pod is None or new_pod["spec"]["nodeName"] != node
    store = Store.connect(stepstone_db)
    try:
        steps = store.load_steps(status["runId"])
    finally:
        store.close()
    assert [s.epoch for s in steps] == [1, 1, 2, 2, 2]  # the zombie recorded nothing after


def test_exceeding_the_memory_limit(cluster: ClusterHandle, run_ns: str, stepstone_db: str) -> None:
    cluster.apply(
        workflow_manifest(
            "hungry",
            "tests.workflows.misc:memory_hungry",
            stepstone_db,
            resources={"limits": {"memory": "300Mi"}},
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("hungry-1", "hungry", {"megabytes": 600}), namespace=run_ns)
    status = wait_phase(cluster, run_ns, "hungry-1", "Succeeded", timeout=120)
    assert status["lastFailure"]["reason"] == "OOMKilled"
    assert status["recoveries"] == 1
    assert status["result"] == ["before", "fits", "after"]
    assert effects.counts(stepstone_db, status["runId"]) == {"before": 1, "hog": 2, "after": 1}


def test_a_run_that_loses_more_pods_than_allowed_fails_with_the_reason(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    _start_blocked(cluster, run_ns, stepstone_db, "fragile", recovery={"maxAttempts": 0})
    cluster.kubectl("delete", "pod", "fragile-1", "-n", run_ns, "--wait=false")
    status = wait_phase(cluster, run_ns, "fragile", "Failed")
    assert status["error"]["type"] == "PodDeleted"
    assert "recovery.maxAttempts is 0" in status["error"]["message"]
    cond = {c["type"]: c for c in status["conditions"]}["Succeeded"]
    assert (cond["status"], cond["reason"]) == ("False", "PodDeleted")


def test_an_unresponsive_runner_is_replaced(
    cluster: ClusterHandle, kubelet: KubeletHandle, run_ns: str, stepstone_db: str
) -> None:
    """SIGSTOP freezes the runner: its process exists but its heartbeat lapses."""
    _start_blocked(cluster, run_ns, stepstone_db, "frozen")
    kubelet.kill_pod_process(run_ns, "frozen-1", signal.SIGSTOP)
    _recovered(cluster, run_ns, "frozen", stepstone_db, "Unresponsive")


def test_an_image_that_cannot_be_pulled_fails_after_the_start_timeout(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str
) -> None:
    cluster.apply(
        workflow_manifest(
            "noimage",
            "tests.workflows.misc:echo",
            stepstone_db,
            image="invalid.example/nothing:does-not-exist",
            recovery={"maxAttempts": 0, "startTimeoutSeconds": 5},
        ),
        namespace=run_ns,
    )
    cluster.apply(run_manifest("noimage-1", "noimage"), namespace=run_ns)
    status = wait_phase(cluster, run_ns, "noimage-1", "Failed", timeout=60)
    assert status["error"]["type"] == "ImagePullError"


def test_an_operator_killed_mid_run_picks_up_and_creates_no_duplicate_pods(
    cluster: ClusterHandle, run_ns: str, stepstone_db: str, live_operator: OperatorProcess
) -> None:
    """Kill the operator, delete the runner pod while it is down, start it again."""
    _start_blocked(cluster, run_ns, stepstone_db, "orphaned")
    live_operator.kill()
    cluster.kubectl("delete", "pod", "orphaned-1", "-n", run_ns, "--wait=true", "--timeout=60s")
    live_operator.start()
    _recovered(cluster, run_ns, "orphaned", stepstone_db, "PodDeleted")
    events = cluster.kubectl(
        "get",
        "events",
        "-n",
        run_ns,
        "--field-selector",
        "involvedObject.name=orphaned,reason=PodCreated",
    ).stdout
    assert events.count("PodCreated") == 2  # attempt 1 and attempt 2, nothing more
