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
from tests.substrate.fixtures import namespace_name, session_cluster, session_scratch
from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.tools import ToolsMissingError


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterHandle]:
    try:
        with session_cluster(session_scratch()) as handle:
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


# -- stepstone: CRDs, a database, the operator -------------------------------------------------
import base64  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402

from stepstone.store import Store  # noqa: E402
from tests.substrate.operator import OperatorProcess  # noqa: E402
from tests.substrate.tools import REPO  # noqa: E402
from tests.workflows import effects  # noqa: E402


@pytest.fixture(scope="session")
def crds(cluster: ClusterHandle) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    for crd in (
        "workflows.stepstone.io",
        "workflowruns.stepstone.io",
        "workflowevents.stepstone.io",
    ):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


@pytest.fixture(scope="session")
def stepstone_db(postgres_server: str) -> str:
    """The database the operator and every runner pod of the session share."""
    name = f"operator_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_server.rpartition("/")[0] + f"/{name}"
    effects.install(url)
    return url


@pytest.fixture(scope="session")
def operator(
    cluster: ClusterHandle,
    crds: None,
    stepstone_db: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        kubeconfig=Path(cluster.kubeconfig),
        database_url=stepstone_db,
        log=tmp_path_factory.mktemp("operator") / "operator.log",
        extra_args=("--migrate",),
    )
    proc.start()
    store = Store.connect(stepstone_db, retry_seconds=30)
    wait_for(
        lambda: _schema_ready(store),
        timeout=60,
        description="the operator's migration",
        ignore=(Exception,),
    )
    store.close()
    yield proc
    proc.stop()


def _schema_ready(store: Store) -> bool:
    store.verify()
    return True


@pytest.fixture
def live_operator(operator: OperatorProcess) -> OperatorProcess:
    """The session's operator, restarted first if an earlier test killed it."""
    if not operator.alive():
        operator.start()
    return operator


@pytest.fixture
def run_ns(
    cluster: ClusterHandle, namespace: str, stepstone_db: str, live_operator: OperatorProcess
) -> str:
    """A namespace ready for WorkflowRuns: the database Secret runner pods read."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "stepstone-database", "namespace": namespace},
            "data": {"url": base64.b64encode(stepstone_db.encode()).decode()},
        }
    )
    return namespace


def workflow_manifest(
    name: str,
    entrypoint: str,
    db_url: str,
    *,
    extra_env: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Workflow running test code from this checkout (the test kubelet runs no images)."""
    recovery = {
        "maxAttempts": 3,
        "backoffSeconds": 1,
        "heartbeatTimeoutSeconds": 8,
        "startTimeoutSeconds": 30,
        **spec.pop("recovery", {}),
    }
    return {
        "apiVersion": "stepstone.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "image": "stepstone:dev",
            "entrypoint": entrypoint,
            "env": [
                {"name": "PYTHONPATH", "value": str(REPO)},
                {"name": effects.ENV, "value": db_url},
                *({"name": k, "value": v} for k, v in (extra_env or {}).items()),
            ],
            "recovery": recovery,
            "cancelGracePeriodSeconds": 5,
            **spec,
        },
    }


def run_manifest(
    name: str, workflow: str, run_input: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "stepstone.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, "input": run_input or {}, **spec},
    }


def status_of(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, Any]:
    obj = cluster.get("workflowrun", name, namespace) or {}
    return dict(obj.get("status") or {})


def wait_phase(
    cluster: ClusterHandle, namespace: str, name: str, phase: str, timeout: float = 90
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = status_of(cluster, namespace, name)
        return status if status.get("phase") == phase else None

    try:
        return wait_for(
            reached, timeout=timeout, interval=0.25, description=f"WorkflowRun {name} to be {phase}"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nstatus: {json.dumps(status_of(cluster, namespace, name), indent=1)}"
        ) from None
