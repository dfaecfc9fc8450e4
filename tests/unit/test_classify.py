"""Pod-loss classification: one table, a fixed clock."""

from __future__ import annotations

import pytest

from stepstone_operator.api import Recovery
from stepstone_operator.classify import classify
from stepstone_operator.views import NodeView, PodView
from tests.unit._operator_fixtures import NOW, ago, ended, pod

RECOVERY = Recovery(start_timeout_seconds=60, heartbeat_timeout_seconds=10)
READY = NodeView("node-1", True, ago(600))
DOWN = NodeView("node-1", False, ago(20))


@pytest.mark.parametrize(
    ("case", "view", "node", "beat", "reason"),
    [
        ("healthy", pod(), READY, ago(1), None),
        ("deleted by a user", pod(deleting=True), READY, ago(1), "PodDeleted"),
        (
            "evicted",
            pod(deleting=True, disruption="EvictionByEvictionAPI"),
            READY,
            ago(1),
            "Evicted",
        ),
        (
            "node pressure",
            pod(deleting=True, disruption="TerminationByKubelet"),
            READY,
            ago(1),
            "Evicted",
        ),
        (
            "taint manager",
            pod(deleting=True, disruption="DeletionByTaintManager"),
            DOWN,
            ago(1),
            "NodeLost",
        ),
        ("deleted on a dead node", pod(deleting=True), DOWN, ago(1), "NodeLost"),
        ("oom", pod(terminated=ended(137, "OOMKilled")), READY, ago(1), "OOMKilled"),
        ("sigkill", pod(terminated=ended(137)), READY, ago(1), "RunnerCrashed"),
        ("python crash", pod(terminated=ended(1)), READY, ago(1), "RunnerCrashed"),
        ("config error", pod(terminated=ended(15)), READY, ago(1), "RunnerError"),
        ("sigterm, no cancel", pod(terminated=ended(14)), READY, ago(1), "PodDeleted"),
        ("silent runner", pod(), READY, ago(11), "Unresponsive"),
        ("silent on a dead node", pod(), DOWN, ago(11), "NodeLost"),
        ("never beat, just started", pod(started_at=ago(5)), READY, None, None),
        ("never beat, long started", pod(started_at=ago(30)), READY, None, "Unresponsive"),
        (
            "pending, in time",
            pod(phase="Pending", started_at=None, created_at=ago(30)),
            READY,
            None,
            None,
        ),
        (
            "unschedulable",
            pod(
                phase="Pending",
                started_at=None,
                created_at=ago(61),
                unschedulable="0/2 nodes are available",
            ),
            READY,
            None,
            "Unschedulable",
        ),
        (
            "image pull",
            pod(
                phase="Pending",
                started_at=None,
                created_at=ago(61),
                waiting_reason="ImagePullBackOff",
            ),
            READY,
            None,
            "ImagePullError",
        ),
        (
            "invalid image",
            pod(
                phase="Pending",
                started_at=None,
                created_at=ago(1),
                waiting_reason="InvalidImageName",
            ),
            READY,
            None,
            "ImagePullError",
        ),
        (
            "missing secret",
            pod(
                phase="Pending",
                started_at=None,
                created_at=ago(61),
                waiting_reason="CreateContainerConfigError",
            ),
            READY,
            None,
            "RunnerError",
        ),
    ],
)
def test_classify(
    case: str, view: PodView, node: NodeView, beat: object, reason: str | None
) -> None:
    loss = classify(
        view,
        node=node,
        last_sign_of_life=beat,  # type: ignore[arg-type]
        now=NOW,
        recovery=RECOVERY,
    )
    assert (loss.reason if loss else None) == reason, case
    if loss is not None:
        assert loss.pod_name == view.name and loss.message
