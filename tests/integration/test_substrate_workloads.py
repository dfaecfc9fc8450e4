"""Workloads on the substrate, through the real kubectl: Deployments, Jobs, restarts, images."""

from __future__ import annotations

import pytest

from tests.integration import manifests as m
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle, KubeletHandle

pytestmark = pytest.mark.cluster


def _pods(cluster: ClusterHandle, namespace: str, selector: str) -> list[m.Json]:
    return cluster.objects("pods", namespace, selector)


def _running(cluster: ClusterHandle, namespace: str, selector: str) -> list[m.Json]:
    return [
        p
        for p in _pods(cluster, namespace, selector)
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and m.condition(p, "Ready") == "True"
    ]


def test_deployment_pod_runs_as_a_process_and_is_replaced_when_deleted(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    cluster.apply(m.deployment("web", m.python_container(m.SLEEPER)), namespace=namespace)
    first = wait_for(
        lambda: _running(cluster, namespace, "app=web"),
        timeout=30,
        description="the Deployment's pod Running and Ready",
    )[0]
    name = first["metadata"]["name"]
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=web").stdout
    assert "Running" in out and "1/1" in out
    assert kubelet.pid(namespace, name) is not None
    assert first["status"]["podIP"] == "127.0.0.1"
    assert first["spec"]["nodeName"] in kubelet.nodes

    cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=true", timeout=30)
    replacement = wait_for(
        lambda: [
            p for p in _running(cluster, namespace, "app=web") if p["metadata"]["name"] != name
        ],
        timeout=30,
        description="a replacement pod Running",
    )[0]
    assert replacement["metadata"]["uid"] != first["metadata"]["uid"]
    assert cluster.get("pod", name, namespace) is None


def test_job_runs_to_succeeded_with_its_exit_code(cluster: ClusterHandle, namespace: str) -> None:
    cluster.apply(
        m.job("ok", m.python_container("print('job done', flush=True)")), namespace=namespace
    )
    job = wait_for(
        lambda: (
            m.condition(cluster.get("job", "ok", namespace), "Complete") == "True"
            and cluster.get("job", "ok", namespace)
        ),
        timeout=60,
        description="Job ok Complete",
    )
    assert job["status"]["succeeded"] == 1
    pod = _pods(cluster, namespace, "job=ok")[0]
    assert pod["status"]["phase"] == "Succeeded"
    terminated = m.container_state(pod)["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"
    assert "job done" in cluster.kubectl("logs", "-n", namespace, "job/ok").stdout


def test_failing_job_reports_the_exit_code(cluster: ClusterHandle, namespace: str) -> None:
    cluster.apply(
        m.job("bad", m.python_container("import sys; print('failing'); sys.exit(3)")),
        namespace=namespace,
    )
    wait_for(
        lambda: m.condition(cluster.get("job", "bad", namespace), "Failed") == "True",
        timeout=60,
        description="Job bad Failed",
    )
    pod = _pods(cluster, namespace, "job=bad")[0]
    assert pod["status"]["phase"] == "Failed"
    terminated = m.container_state(pod)["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"


def test_killed_process_is_restarted_with_its_last_state(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    cluster.apply(
        m.pod("crashy", m.python_container(m.SLEEPER), restart_policy="Always"),
        namespace=namespace,
    )
    wait_for(lambda: _running(cluster, namespace, "app=crashy"), 30, description="crashy Running")
    old_pid = kubelet.pid(namespace, "crashy")
    assert kubelet.kill_pod_process(namespace, "crashy") == [old_pid]

    def restarted() -> m.Json | None:
        status = m.container_status(cluster.get("pod", "crashy", namespace))
        return status if status.get("restartCount") == 1 and "running" in status["state"] else None

    status = wait_for(restarted, timeout=30, description="crashy restarted once")
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert kubelet.pid(namespace, "crashy") != old_pid


def test_crash_loop_backs_off(cluster: ClusterHandle, namespace: str) -> None:
    cluster.apply(
        m.pod("loop", m.python_container("raise SystemExit(2)"), restart_policy="Always"),
        namespace=namespace,
    )

    def backing_off() -> bool:
        status = m.container_status(cluster.get("pod", "loop", namespace))
        waiting = status.get("state", {}).get("waiting", {})
        return bool(waiting.get("reason") == "CrashLoopBackOff" and status["restartCount"] >= 1)

    wait_for(backing_off, timeout=30, description="loop in CrashLoopBackOff")
    pod = cluster.get("pod", "loop", namespace)
    assert pod is not None and pod["status"]["phase"] == "Running"
    assert m.container_status(pod)["lastState"]["terminated"]["exitCode"] == 2


def test_image_pull_errors_can_be_requested(cluster: ClusterHandle, namespace: str) -> None:
    container = {**m.python_container(m.SLEEPER), "image": "invalid.example/nope:1"}
    cluster.apply(m.pod("badimage", container), namespace=namespace)

    def reason() -> str | None:
        waiting = m.container_state(cluster.get("pod", "badimage", namespace)).get("waiting")
        return waiting["reason"] if waiting else None

    wait_for(lambda: reason() == "ImagePullBackOff", 30, description="ImagePullBackOff")
    pod = cluster.get("pod", "badimage", namespace)
    assert pod is not None and pod["status"]["phase"] == "Pending"
    cluster.kubectl("delete", "pod", "badimage", "-n", namespace, "--wait=true", timeout=30)


def test_missing_command_is_a_create_container_error(
    cluster: ClusterHandle, namespace: str, kubelet: KubeletHandle
) -> None:
    # Substrate-only: on kind the image's entrypoint would run.
    cluster.apply(m.pod("nocmd", {"name": "main", "image": m.IMAGE}), namespace=namespace)

    def reason() -> str | None:
        waiting = m.container_state(cluster.get("pod", "nocmd", namespace)).get("waiting")
        return waiting["reason"] if waiting else None

    wait_for(lambda: reason() == "CreateContainerError", 30, description="CreateContainerError")


def test_init_containers_run_first(cluster: ClusterHandle, namespace: str) -> None:
    volume = {"name": "shared", "emptyDir": {}}
    mount = [{"name": "shared", "mountPath": "/tmp/substrate-shared"}]
    init = m.python_container(
        "open('/tmp/substrate-shared/flag', 'w').write('from init')",
        name="init",
        volumeMounts=mount,
    )
    main = m.python_container(
        "print(open('/tmp/substrate-shared/flag').read())", volumeMounts=mount
    )
    manifest = m.pod("withinit", main, initContainers=[init], volumes=[volume])
    cluster.apply(manifest, namespace=namespace)
    pod = wait_for(
        lambda: (
            (p := cluster.get("pod", "withinit", namespace))
            and p["status"].get("phase") == "Succeeded"
            and p
        ),
        timeout=30,
        description="withinit Succeeded",
    )
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert "from init" in cluster.kubectl("logs", "withinit", "-n", namespace).stdout


def test_missing_executable_is_a_start_error(cluster: ClusterHandle, namespace: str) -> None:
    container = {"name": "main", "image": m.IMAGE, "command": ["/no/such/program"]}
    cluster.apply(m.pod("noexec", container), namespace=namespace)
    pod = wait_for(
        lambda: (
            (p := cluster.get("pod", "noexec", namespace))
            and p["status"].get("phase") == "Failed"
            and p
        ),
        timeout=30,
        description="noexec Failed",
    )
    terminated = m.container_state(pod)["terminated"]
    assert terminated["exitCode"] == 128
    assert terminated["reason"] == "StartError"
    assert "/no/such/program" in terminated["message"]
