"""Fixtures for integration tests against a real Kubernetes API (see docs/test-substrate.md).

- `cluster` (session): a private control plane + test kubelet started once on free ports in a
  temp dir, or the cluster whose kubeconfig $STEPSTONE_KUBECONFIG names (e.g. `make
  cluster-up`'s `.cluster/kubeconfig`, or kind's). Skips, saying what is missing, when the
  binaries are not built.
- `kubelet` (per test): the test kubelet's fault controls; skips on clusters without it.
  Afterwards restores silenced nodes and restarts a killed kubelet, so the next test starts
  from a healthy cluster.
- `namespace` (per test): a fresh namespace with its `default` ServiceAccount, deleted
  afterwards without waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.substrate import wait_for
from tests.substrate.fixtures import namespace_name, session_cluster
from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.tools import ToolsMissingError


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    try:
        with session_cluster(tmp_path_factory.mktemp("cluster")) as handle:
            yield handle
    except ToolsMissingError as exc:
        pytest.skip(f"no test control plane: {exc}")


def _nodes_ready(cluster: ClusterHandle, nodes: list[str]) -> bool:
    listing = cluster.kubectl_json("get", "nodes")
    ready = {
        n["metadata"]["name"]
        for n in listing["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        and not any(
            t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints") or []
        )
    }
    return set(nodes) <= ready


@pytest.fixture
def kubelet(cluster: ClusterHandle) -> Iterator[KubeletHandle]:
    handle = cluster.kubelet
    if handle is None:
        pytest.skip("needs the substrate's test kubelet (fault injection); this cluster has none")
    yield handle
    if not handle.alive():
        handle.start()
    for node in handle.silenced_nodes():
        handle.restore_node(node)
    nodes = handle.nodes
    wait_for(
        lambda: _nodes_ready(cluster, nodes),
        timeout=60,
        interval=0.5,
        description=f"nodes {nodes} Ready and untainted after the test",
    )


@pytest.fixture
def namespace(cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    name = namespace_name(request.node.name)
    cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        timeout=30,
        description=f"the default ServiceAccount in namespace {name}",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
