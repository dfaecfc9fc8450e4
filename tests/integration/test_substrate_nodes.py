"""Node loss: a node whose heartbeats stop goes NotReady and its pods are evicted in seconds.

Timeline with the substrate's defaults: Lease renewals stop; after the node monitor grace
period (8 s) the node's Ready condition becomes Unknown and it gets the
node.kubernetes.io/unreachable:NoExecute taint; pods tolerate that taint for 5 s
(--default-unreachable-toleration-seconds), then the taint eviction controller deletes them.
Nobody finalises the deletion while the node is silent, so the old pod stays Terminating (its
process keeps running, as on a partitioned node) until the node comes back.
"""

from __future__ import annotations

import time

import psutil
import pytest

from tests.integration import manifests as m
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle, KubeletHandle

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

#: Node monitor grace (8 s) + toleration (5 s) + slack for the 1 s monitor period and load.
EVICTION_BOUND_SECONDS = 35


def _node_ready(cluster: ClusterHandle, node: str) -> str | None:
    return m.condition(cluster.get("node", node), "Ready")


def test_silent_node_goes_not_ready_and_its_pods_are_evicted(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    cluster.apply(m.deployment("lost", m.python_container(m.SLEEPER)), namespace=namespace)
    first = wait_for(
        lambda: [
            p
            for p in cluster.objects("pods", namespace, "app=lost")
            if m.condition(p, "Ready") == "True"
        ],
        timeout=30,
        description="the pod Ready",
    )[0]
    name, node = first["metadata"]["name"], first["spec"]["nodeName"]
    pid = kubelet.pid(namespace, name)
    assert pid is not None

    silenced_at = time.monotonic()
    kubelet.silence_node(node)
    wait_for(
        lambda: _node_ready(cluster, node) == "Unknown",
        timeout=EVICTION_BOUND_SECONDS,
        description=f"{node} NotReady (Ready=Unknown)",
    )
    not_ready_after = time.monotonic() - silenced_at
    listing = cluster.kubectl("get", "node", node).stdout
    assert "NotReady" in listing

    evicted = wait_for(
        lambda: (
            (p := cluster.get("pod", name, namespace))
            and p["metadata"].get("deletionTimestamp")
            and p
        ),
        timeout=EVICTION_BOUND_SECONDS,
        description=f"pod {name} evicted (deletionTimestamp set)",
    )
    evicted_after = time.monotonic() - silenced_at
    assert evicted_after <= EVICTION_BOUND_SECONDS
    assert m.condition(evicted, "DisruptionTarget") == "True"
    taints = {t["key"] for t in cluster.get("node", node)["spec"].get("taints", [])}  # type: ignore[index]
    assert "node.kubernetes.io/unreachable" in taints
    # Partitioned, not dead: the process still runs and the pod is still there, Terminating.
    assert psutil.pid_exists(pid)

    replacement = wait_for(
        lambda: [
            p
            for p in cluster.objects("pods", namespace, "app=lost")
            if p["metadata"]["name"] != name and m.condition(p, "Ready") == "True"
        ],
        timeout=30,
        description="a replacement pod Ready on another node",
    )[0]
    assert replacement["spec"]["nodeName"] != node

    kubelet.restore_node(node)
    wait_for(
        lambda: cluster.get("pod", name, namespace) is None,
        timeout=30,
        description="the evicted pod finalised once its node is back",
    )
    wait_for(lambda: not psutil.pid_exists(pid), 10, description="the old process stopped")
    wait_for(
        lambda: _node_ready(cluster, node) == "True",
        timeout=30,
        description=f"{node} Ready again",
    )
    print(f"NotReady after {not_ready_after:.1f} s, evicted after {evicted_after:.1f} s")
