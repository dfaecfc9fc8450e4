"""The end-to-end scenarios, written once for any cluster with a chart-installed operator.

The kind suite (tests/e2e/test_kind.py) runs them against real images; the chart's integration
test (tests/integration/test_chart_install.py) runs them on the local control plane, where the
operator is a pod of the chart too. What differs between the two is only a `Target`: the
cluster, the namespace, and the image that holds `tests.e2e.flows`.

Each scenario proves its point from the WorkflowRun's status alone (no database access): every
step of `tests.e2e.flows:pipeline` returns the pod attempt that executed it, so a result shows
which steps were replayed from the record and which ran again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.substrate import WaitTimeoutError, wait_for
from tests.substrate.handle import ClusterHandle

FLOWS = "tests.e2e.flows:pipeline"
TERMINAL = ("Succeeded", "Failed", "Cancelled", "Terminated")


@dataclass(frozen=True)
class Target:
    """Where the scenarios run: a namespace the operator serves, with the database Secret."""

    cluster: ClusterHandle
    namespace: str
    #: An image holding tests/e2e/flows.py as `tests.e2e.flows`.
    flows_image: str
    #: Seconds a run may take to reach a phase (kind starts pods slower than the substrate).
    timeout: float = 120.0


def status(t: Target, name: str) -> dict[str, Any]:
    obj = t.cluster.get("workflowrun", name, t.namespace) or {}
    return dict(obj.get("status") or {})


def wait_phase(t: Target, name: str, phase: str) -> dict[str, Any]:
    """Wait until run `name` is in `phase`; fail at once if it ends in another phase."""

    def reached() -> dict[str, Any] | None:
        current = status(t, name)
        if current.get("phase") == phase:
            return current
        if current.get("phase") in TERMINAL:
            raise AssertionError(
                f"WorkflowRun {name} ended {current['phase']}, not {phase}:\n"
                f"{json.dumps(current, indent=1)}"
            )
        return None

    try:
        return wait_for(
            reached, timeout=t.timeout, interval=0.25, description=f"WorkflowRun {name} {phase}"
        )
    except WaitTimeoutError as exc:
        raise WaitTimeoutError(f"{exc}\nstatus: {json.dumps(status(t, name), indent=1)}") from None


def apply_workflow(t: Target, name: str = "e2e-flows") -> None:
    t.cluster.apply(
        {
            "apiVersion": "stepstone.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {
                "image": t.flows_image,
                "entrypoint": FLOWS,
                "recovery": {"maxAttempts": 3, "backoffSeconds": 1},
                "cancelGracePeriodSeconds": 10,
            },
        },
        namespace=t.namespace,
    )


def start_run(t: Target, name: str, steps: int, block_at: int = 0) -> None:
    apply_workflow(t)
    t.cluster.apply(
        {
            "apiVersion": "stepstone.io/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": {
                "workflowRef": {"name": "e2e-flows"},
                "input": {"steps": steps, "block_at": block_at},
            },
        },
        namespace=t.namespace,
    )


def wait_step_running(t: Target, name: str, step: int) -> dict[str, Any]:
    """Wait until the run's pod is executing step `step` (seen in status.currentStep)."""

    def running() -> dict[str, Any] | None:
        current = status(t, name)
        number = (current.get("currentStep") or {}).get("number")
        return current if current.get("phase") == "Running" and number == step else None

    return wait_for(
        running, timeout=t.timeout, interval=0.25, description=f"{name} running step {step}"
    )


def patch_spec(t: Target, name: str, spec: dict[str, Any]) -> None:
    t.cluster.kubectl(
        "patch", "wfrun", name, "-n", t.namespace, "--type", "merge",
        "-p", json.dumps({"spec": spec}),
    )  # fmt: skip


# -- the scenarios -----------------------------------------------------------------------------


def a_run_completes(t: Target, name: str = "e2e-complete") -> dict[str, Any]:
    start_run(t, name, steps=3)
    done = wait_phase(t, name, "Succeeded")
    assert done["result"]["attempts"] == [1, 1, 1], done["result"]
    assert (done["completedSteps"], done["attempt"], done["recoveries"]) == (3, 1, 0), done
    conditions = {c["type"]: c["status"] for c in done["conditions"]}
    assert conditions == {"Accepted": "True", "Succeeded": "True"}, done["conditions"]
    return done


def a_deleted_pod_is_recovered_with_replay(t: Target, name: str = "e2e-recover") -> dict[str, Any]:
    """Delete the runner pod while step 3 of 5 runs: a new pod replays steps 1-2 from the
    record (their recorded attempt stays 1) and executes 3-5 (attempt 2)."""
    start_run(t, name, steps=5, block_at=3)
    wait_step_running(t, name, 3)
    t.cluster.kubectl("delete", "pod", f"{name}-1", "-n", t.namespace, "--wait=false")
    done = wait_phase(t, name, "Succeeded")
    assert done["result"]["attempts"] == [1, 1, 2, 2, 2], done["result"]
    assert (done["attempt"], done["recoveries"]) == (2, 1), done
    assert done["lastFailure"]["reason"] == "PodDeleted", done["lastFailure"]
    assert done["lastFailure"]["podName"] == f"{name}-1"
    events = t.cluster.kubectl(
        "get", "events", "-n", t.namespace, "--field-selector", f"involvedObject.name={name}"
    ).stdout
    assert "PodLost" in events, events
    return done


def cancel_then_resume(t: Target, name: str = "e2e-cancel") -> dict[str, Any]:
    """Cancel while step 2 of 4 runs (the step sees the cancellation); then resume: step 1
    is replayed, steps 2-4 run in a new pod."""
    start_run(t, name, steps=4, block_at=2)
    wait_step_running(t, name, 2)
    patch_spec(t, name, {"state": "Cancelled"})
    cancelled = wait_phase(t, name, "Cancelled")
    assert cancelled["completedSteps"] == 1, cancelled
    wait_for(
        lambda: not t.cluster.objects("pod", t.namespace, f"stepstone.io/run={name}"),
        t.timeout,
        description=f"the pods of cancelled run {name} removed",
    )
    patch_spec(t, name, {"state": "Running"})
    done = wait_phase(t, name, "Succeeded")
    # Step 1 comes from the record; 2-4 ran in the resumed pod, whose attempt (epoch) is above
    # the cancelled one's (the cancel may have fenced an attempt of its own).
    first, *rest = done["result"]["attempts"]
    assert first == 1 and rest == [done["attempt"]] * 3 and done["attempt"] > 1, done
    assert done["recoveries"] == 0, done
    return done


def fork_from_a_step(t: Target, source: str, from_step: int) -> dict[str, Any]:
    """Fork a finished run by patching `spec.forks`: the fork reuses the source's recorded
    steps before `from_step` (with the attempts that executed them in the source) and runs the
    rest itself, in its own first attempt. Pick a source whose attempts tell the two apart."""
    fork = f"{source}-fork"
    origin = status(t, source)
    patch_spec(t, source, {"forks": [{"name": fork, "fromStep": from_step}]})
    done = wait_phase(t, fork, "Succeeded")
    steps = len(origin["result"]["attempts"])
    reused = origin["result"]["attempts"][: from_step - 1]
    assert done["result"]["attempts"] == reused + [1] * (steps - from_step + 1), (
        origin["result"],
        done["result"],
    )
    assert done["runId"] != origin["runId"]
    forked = t.cluster.get("workflowrun", fork, t.namespace) or {}
    assert forked["spec"]["forkFrom"] == {"run": source, "step": from_step}, forked["spec"]
    return done
