"""Process lifecycle on the substrate: memory limits, deletion grace, logs, kubelet restarts."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.integration import manifests as m
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle, KubeletHandle

pytestmark = pytest.mark.cluster

#: Ignores SIGTERM (noting it in its output), so only SIGKILL ends it.
STUBBORN = """
import signal, sys, time
def on_term(signum, frame):
    print("got SIGTERM", flush=True)
signal.signal(signal.SIGTERM, on_term)
print("started", flush=True)
while True:
    time.sleep(0.1)
"""

#: Exits cleanly on SIGTERM.
POLITE = """
import signal, sys, time
def on_term(signum, frame):
    print("bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("started", flush=True)
while True:
    time.sleep(0.1)
"""


def _phase(cluster: ClusterHandle, name: str, namespace: str) -> str | None:
    pod = cluster.get("pod", name, namespace)
    return pod["status"].get("phase") if pod else None


def _wait_running(cluster: ClusterHandle, name: str, namespace: str) -> m.Json:
    pod: m.Json = wait_for(
        lambda: (
            (p := cluster.get("pod", name, namespace)) and "running" in m.container_state(p) and p
        ),
        timeout=30,
        description=f"pod {name} running",
    )
    return pod


def test_memory_limit_gives_oomkilled(cluster: ClusterHandle, namespace: str) -> None:
    grow = """
import time
hog = []
while True:
    hog.append(bytearray(8 * 1024 * 1024))
    time.sleep(0.02)
"""
    container = m.python_container(grow, resources={"limits": {"memory": "96Mi"}})
    cluster.apply(m.pod("hog", container), namespace=namespace)
    wait_for(
        lambda: _phase(cluster, "hog", namespace) == "Failed",
        timeout=60,
        description="pod hog Failed",
    )
    terminated = m.container_state(cluster.get("pod", "hog", namespace))["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    grace = 3
    cluster.apply(
        m.pod("stubborn", m.python_container(STUBBORN), terminationGracePeriodSeconds=grace),
        namespace=namespace,
    )
    _wait_running(cluster, "stubborn", namespace)
    wait_for(
        lambda: "started" in kubelet.log_path(namespace, "stubborn").read_text(),
        timeout=10,
        description="stubborn's first output",
    )
    pid = kubelet.pid(namespace, "stubborn")
    assert pid is not None
    log = kubelet.log_path(namespace, "stubborn")
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=false")
    wait_for(
        lambda: cluster.get("pod", "stubborn", namespace) is None,
        timeout=grace + 15,
        description="pod stubborn gone",
    )
    elapsed = time.monotonic() - started
    assert "got SIGTERM" in log.read_text()
    assert grace - 0.5 <= elapsed <= grace + 8, elapsed
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_deletion_of_a_polite_process_is_quick(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    cluster.apply(
        m.pod("polite", m.python_container(POLITE), terminationGracePeriodSeconds=30),
        namespace=namespace,
    )
    _wait_running(cluster, "polite", namespace)
    wait_for(
        lambda: "started" in kubelet.log_path(namespace, "polite").read_text(),
        timeout=10,
        description="polite's first output",
    )
    log = kubelet.log_path(namespace, "polite")
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "polite", "-n", namespace, "--wait=true", timeout=30)
    assert time.monotonic() - started < 10
    assert "bye" in log.read_text()


def test_kubectl_logs_follow_tail_and_previous(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    code = "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.3)"
    cluster.apply(
        m.pod("talker", m.python_container(code), restart_policy="OnFailure"), namespace=namespace
    )
    followed = cluster.kubectl("logs", "-f", "talker", "-n", namespace, timeout=60).stdout
    assert followed.splitlines() == [f"line {i}" for i in range(5)]
    wait_for(
        lambda: _phase(cluster, "talker", namespace) == "Succeeded",
        timeout=30,
        description="talker Succeeded",
    )
    tail = cluster.kubectl("logs", "talker", "-n", namespace, "--tail=2").stdout
    assert tail.splitlines() == ["line 3", "line 4"]
    assert kubelet.log_path(namespace, "talker").read_text().startswith("line 0")

    crasher = "import os, sys\nprint('attempt', flush=True)\nsys.exit(1)"
    cluster.apply(
        m.pod("crasher", m.python_container(crasher), restart_policy="Always"), namespace=namespace
    )
    wait_for(
        lambda: (
            m.container_status(cluster.get("pod", "crasher", namespace)).get("restartCount", 0) >= 1
        ),
        timeout=30,
        description="crasher restarted",
    )
    previous = cluster.kubectl("logs", "crasher", "-n", namespace, "--previous").stdout
    assert previous.strip() == "attempt"


def test_kubelet_restart_keeps_running_containers(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    cluster.apply(
        m.pod("survivor", m.python_container(m.SLEEPER), restart_policy="Always"),
        namespace=namespace,
    )
    _wait_running(cluster, "survivor", namespace)
    pid = kubelet.pid(namespace, "survivor")
    kubelet.kill()
    assert pid is not None and psutil.pid_exists(pid), "the container died with the kubelet"
    kubelet.start()
    assert kubelet.pid(namespace, "survivor") == pid
    status = m.container_status(cluster.get("pod", "survivor", namespace))
    assert status["restartCount"] == 0 and "running" in status["state"]
    # and it still manages it: a SIGKILL from outside is noticed and restarted
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            m.container_status(cluster.get("pod", "survivor", namespace)).get("restartCount") == 1
        ),
        timeout=30,
        description="survivor restarted by the new kubelet",
    )


def test_eviction_api_and_node_pressure_eviction(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    cluster.apply(m.pod("evictme", m.python_container(m.SLEEPER)), namespace=namespace)
    _wait_running(cluster, "evictme", namespace)
    kubelet.evict_pod(namespace, "evictme")
    wait_for(
        lambda: cluster.get("pod", "evictme", namespace) is None,
        timeout=30,
        description="evictme deleted by the Eviction API",
    )

    cluster.apply(m.pod("pressured", m.python_container(m.SLEEPER)), namespace=namespace)
    _wait_running(cluster, "pressured", namespace)
    kubelet.node_pressure_evict(
        namespace, "pressured", message="The node was low on resource: memory."
    )
    pod = wait_for(
        lambda: (
            (p := cluster.get("pod", "pressured", namespace))
            and p["status"].get("phase") == "Failed"
            and p
        ),
        timeout=30,
        description="pressured Failed",
    )
    assert pod["status"]["reason"] == "Evicted"
    assert "low on resource" in pod["status"]["message"]
    assert m.condition(pod, "DisruptionTarget") == "True"


def test_active_deadline_fails_the_pod(cluster: ClusterHandle, namespace: str) -> None:
    cluster.apply(
        m.pod("late", m.python_container(m.SLEEPER), activeDeadlineSeconds=2),
        namespace=namespace,
    )
    pod = wait_for(
        lambda: (
            (p := cluster.get("pod", "late", namespace))
            and p["status"].get("phase") == "Failed"
            and p
        ),
        timeout=30,
        description="late Failed",
    )
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert m.container_state(pod)["terminated"]["exitCode"] == 143  # SIGTERM ended it
