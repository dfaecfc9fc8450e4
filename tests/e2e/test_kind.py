"""The kind suite: real images, a real kubelet, the bundled Postgres, the chart as the
quickstart installs it (tests/e2e/conftest.py). The scenarios are the ones the chart's
integration test runs on the local control plane (tests/e2e/scenarios.py); what only a real
cluster can show is checked here: the security context is honoured, the bundled Postgres
works and keeps its data and password across uninstall and reinstall, metrics through the API
server's service proxy, and the docs' `kind` blocks. Tests are stages, in order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e import docblocks, scenarios
from tests.e2e.conftest import FLOWS_IMAGE, NAMESPACE
from tests.substrate.handle import ClusterHandle
from tests.substrate.tools import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

RELEASE = "stepstone"


@pytest.fixture(scope="module")
def target(kind_cluster: ClusterHandle) -> scenarios.Target:
    return scenarios.Target(kind_cluster, NAMESPACE, flows_image=FLOWS_IMAGE, timeout=300)


def test_the_quickstart_runs_the_operator_as_the_chart_says(kind_cluster: ClusterHandle) -> None:
    """The quickstart block (helm install, helm test, the examples) ran in the fixture."""
    deployment = kind_cluster.get("deployment", RELEASE, NAMESPACE)
    assert deployment is not None and deployment["status"].get("readyReplicas") == 1
    uid = kind_cluster.kubectl("exec", "-n", NAMESPACE, f"deployment/{RELEASE}", "--", "id", "-u")
    assert uid.stdout.strip() == "10001"
    # The root filesystem is read-only for real here.
    touch = kind_cluster.kubectl(
        "exec", "-n", NAMESPACE, f"deployment/{RELEASE}", "--", "touch", "/app/x", check=False
    )
    assert touch.returncode != 0
    statefulset = kind_cluster.get("statefulset", f"{RELEASE}-postgresql", NAMESPACE)
    assert statefulset is not None and statefulset["status"].get("readyReplicas") == 1
    runs = {
        r["metadata"]["name"]: r["status"]["phase"]
        for r in kind_cluster.objects("wfrun", NAMESPACE)
    }
    assert runs["order-42"] == runs["hello-world"] == "Succeeded", runs


def test_a_run_completes(target: scenarios.Target) -> None:
    scenarios.a_run_completes(target)


def test_a_deleted_pod_is_recovered_with_replay_and_can_be_forked(
    target: scenarios.Target,
) -> None:
    scenarios.a_deleted_pod_is_recovered_with_replay(target, "e2e-recover")
    scenarios.fork_from_a_step(target, "e2e-recover", from_step=4)


def test_cancel_then_resume(target: scenarios.Target) -> None:
    scenarios.cancel_then_resume(target)


def test_metrics_through_the_api_server(kind_env: dict[str, str]) -> None:
    [metrics] = docblocks.run("metrics", env=kind_env)
    assert "stepstone_workflowruns" in metrics.stdout
    assert "stepstone_recoveries_total" in metrics.stdout


def test_a_backup_of_the_bundled_postgres(kind_env: dict[str, str], tmp_path: Path) -> None:
    _, listing = docblocks.run("backup-bundled", env=kind_env, cwd=tmp_path)
    assert (tmp_path / "stepstone.dump").stat().st_size > 0
    assert "TABLE DATA stepstone runs" in listing.stdout, listing.stdout


def test_a_workflow_image_builds_as_the_docs_say(kind_env: dict[str, str]) -> None:
    docblocks.run("workflow-image", env=kind_env)


def test_uninstall_and_reinstall_keep_the_bundled_data(
    kind_cluster: ClusterHandle, kind_env: dict[str, str], target: scenarios.Target
) -> None:
    """The volume and the database Secret outlive the release, so a reinstall finds the same
    password and the same records."""
    before = scenarios.status(target, "e2e-complete")
    docblocks.run("uninstall", env=kind_env)
    assert kind_cluster.get("statefulset", f"{RELEASE}-postgresql", NAMESPACE) is None
    assert kind_cluster.objects("pvc", NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")
    assert kind_cluster.get("secret", "stepstone-database", NAMESPACE) is not None
    kind_cluster.helm(
        "install", RELEASE, str(REPO / "charts" / "stepstone"), "-n", NAMESPACE,
        "--set", "image.tag=dev", "--wait", "--timeout", "10m", timeout=900,
    )  # fmt: skip
    assert scenarios.status(target, "e2e-complete") == before
    kind_cluster.helm("test", RELEASE, "-n", NAMESPACE, timeout=600)
    logs = kind_cluster.kubectl("logs", "-n", NAMESPACE, f"deployment/{RELEASE}").stdout
    assert all(json.loads(line) for line in logs.splitlines() if line.strip())


def test_purge(kind_cluster: ClusterHandle, kind_env: dict[str, str]) -> None:
    docblocks.run("purge", env=kind_env)
    assert kind_cluster.get("crd", "workflowruns.stepstone.io") is None
