"""`helm install` of a small chart against the substrate's API server, with the built helm."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle

pytestmark = pytest.mark.cluster

CHART = Path(__file__).parent / "charts" / "hello"


def test_helm_install_upgrade_uninstall(cluster: ClusterHandle, namespace: str) -> None:
    version = cluster.helm("version", "--short").stdout
    assert version.startswith("v3.")
    cluster.helm("lint", str(CHART))
    cluster.helm(
        "install", "hello", str(CHART), "-n", namespace,
        "--set", "greeting=hi substrate", "--wait", "--timeout", "90s",
        timeout=120,
    )  # fmt: skip
    releases = cluster.helm("list", "-n", namespace, "-o", "json").stdout
    assert '"name":"hello"' in releases and '"status":"deployed"' in releases
    # The pod read its ConfigMap through the API with its own ServiceAccount's token.
    wait_for(
        lambda: (
            "greeting: hi substrate"
            in cluster.kubectl("logs", "deploy/hello", "-n", namespace, check=False).stdout
        ),
        timeout=30,
        description="the chart's pod greeting",
    )
    cluster.helm(
        "upgrade", "hello", str(CHART), "-n", namespace, "--reuse-values",
        "--set", "replicas=2", "--wait", "--timeout", "90s",
        timeout=120,
    )  # fmt: skip
    deployment = cluster.get("deployment", "hello", namespace)
    assert deployment is not None and deployment["status"]["readyReplicas"] == 2
    cluster.helm("uninstall", "hello", "-n", namespace, "--wait", "--timeout", "60s", timeout=90)
    assert cluster.get("deployment", "hello", namespace) is None
