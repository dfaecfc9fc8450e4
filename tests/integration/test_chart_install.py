"""The Helm chart on the local control plane, following the docs step by step.

`helm install` brings the operator up as a pod run by the test kubelet (image `stepstone:dev`
stands for this checkout), under the chart's ServiceAccount and RBAC, with the schema migrated
by the chart's hook Job against a real Postgres (external-database mode: the bundled Postgres
needs a real image, so the kind suite covers it). Then WorkflowRuns complete, a deleted pod is
recovered with replay, cancel/resume/fork work (tests/e2e/scenarios.py, shared with the kind
suite), `helm test` passes (and fails when it should), the namespaced mode holds nothing
cluster-scoped, and `helm uninstall` leaves the CRDs, the WorkflowRuns and the records.

Every `substrate` command block of docs/install.md, operating.md and troubleshooting.md runs
here, verbatim (tests/e2e/docblocks.py), with only the image tags and ports appended to `helm`.

Why a private control plane for this module, not the session's `cluster`: the chart's operator
must be the only operator acting on its runs, and the session's `operator` fixture (like `make
cluster-up`'s) serves every namespace of its cluster once any test has started it; the
chart's cluster-scoped objects (release-owned CRDs, a ClusterRole) would also clash with the
`crds` fixture's `kubectl apply`. A second control plane costs about 9 s and 0.5 GiB and makes
this module independent of test order. Its tests are stages of one install's life, in order.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stepstone.store import Store
from tests.e2e import docblocks, scenarios
from tests.substrate import wait_for
from tests.substrate.cluster import ClusterConfig, start_cluster, stop_cluster
from tests.substrate.fixtures import handle_for, reap_crashed_sessions, session_scratch
from tests.substrate.handle import ClusterHandle, CommandFailed
from tests.substrate.postgres import free_port
from tests.substrate.tools import REPO, ToolsMissingError, find_tools

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NS = "stepstone"
RELEASE = "stepstone"
OPERATOR_SA = f"system:serviceaccount:{NS}:{RELEASE}"
#: The test kubelet runs no images: these names stand for folders of this checkout.
IMAGE_PATHS = {"stepstone:dev": REPO, "stepstone/examples:dev": REPO / "examples"}


@pytest.fixture(scope="module")
def chart_cluster() -> Iterator[ClusterHandle]:
    """A control plane and test kubelet of this module's own (see the module docstring)."""
    try:
        bin_dir = find_tools()
    except ToolsMissingError as exc:
        pytest.skip(f"no test control plane: {exc}")
    scratch = session_scratch()
    reap_crashed_sessions(scratch)
    config = ClusterConfig(
        state_dir=scratch,
        bin_dir=bin_dir,
        die_with_parent=True,
        kubelet_args=tuple(f"--image-path={i}={p}" for i, p in IMAGE_PATHS.items()),
    )
    info = start_cluster(config)
    try:
        yield handle_for(info, die_with_parent=True)
    finally:
        stop_cluster(scratch)


def _create_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rpartition("/")[0] + f"/{name}"


@pytest.fixture(scope="module")
def database_url(postgres_server: str) -> str:
    """An empty database: the chart's migration hook installs the schema."""
    return _create_database(postgres_server, "chart")


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """The operator pod's ports: pods share the host's network here, so pick free ones."""
    return {"metrics": free_port(), "health": free_port()}


@pytest.fixture(scope="module")
def helm_args(ports: dict[str, int]) -> list[str]:
    """What the docs' helm commands need on this substrate, appended to them."""
    return [
        "--set", "image.tag=dev",
        "--set", "test.image.tag=dev",
        "--set", f"operator.metricsPort={ports['metrics']}",
        "--set", f"operator.healthPort={ports['health']}",
        "--timeout", "4m",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def env(chart_cluster: ClusterHandle, database_url: str, postgres_server: str) -> dict[str, str]:
    """The shell environment of the docs' commands: kubectl, helm and the stepstone CLI on
    PATH, KUBECONFIG, and $DATABASE_URL / $RESTORE_URL as the docs use them."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(chart_cluster.bin_dir), venv_bin, os.environ.get("PATH", "")])
    return {
        **chart_cluster.env,
        "PATH": path,
        "DATABASE_URL": database_url,
        "RESTORE_URL": _create_database(postgres_server, "restore"),
    }


@pytest.fixture(scope="module")
def target(chart_cluster: ClusterHandle) -> scenarios.Target:
    return scenarios.Target(cluster=chart_cluster, namespace=NS, flows_image="stepstone:dev")


def _operator_pod(cluster: ClusterHandle) -> dict:
    pods = [
        p
        for p in cluster.objects("pod", NS, "app.kubernetes.io/component=operator")
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def _can_i(cluster: ClusterHandle, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={OPERATOR_SA}", check=False)
    return result.stdout.strip() == "yes"


def _wait_operator_serving(cluster: ClusterHandle, ports: dict[str, int]) -> None:
    """The operator pod answers /metrics: its controller started (schema verified)."""

    def serving() -> bool:
        url = f"http://127.0.0.1:{ports['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return b"stepstone_workflowruns" in response.read()

    wait_for(serving, 60, 0.5, description="the operator pod serving /metrics", ignore=(OSError,))


# -- install -----------------------------------------------------------------------------------


def test_install_with_an_external_database(
    chart_cluster: ClusterHandle,
    env: dict[str, str],
    helm_args: list[str],
    database_url: str,
    ports: dict[str, int],
) -> None:
    cluster = chart_cluster
    cluster.helm("lint", "--strict", str(REPO / "charts" / "stepstone"))
    docblocks.run("external-secret", env=env)
    install, _, _ = docblocks.run("external-install", env=env, helm_args=helm_args)
    notes = install.stdout  # NOTES.txt, as the user sees it after `helm install`
    assert "Mode: cluster-wide" in notes and "helm test stepstone -n stepstone" in notes, notes

    # The hook Job migrated the schema (the operator only verifies it, and does not --migrate).
    store = Store.connect(database_url)
    try:
        assert store.verify() >= 1
    finally:
        store.close()
    assert cluster.objects("job", NS) == [], "the migration hook Job is deleted once it passed"

    # The operator is a pod of the test kubelet, under the chart's ServiceAccount.
    pod = _operator_pod(cluster)
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["serviceAccountName"] == RELEASE
    assert container["command"] == ["python", "-m", "stepstone_operator"]
    assert "--migrate" not in container["args"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert cluster.kubelet is not None
    running = {(p["namespace"], p["name"]) for p in cluster.kubelet.pods()}
    assert (NS, pod["metadata"]["name"]) in running
    _wait_operator_serving(cluster, ports)

    # Cluster-wide mode: a ClusterRole with exactly what docs/operating.md lists, no Secrets.
    assert cluster.get("clusterrole", f"{RELEASE}-operator") is not None
    assert _can_i(cluster, "create", "pods", "-n", "default")
    assert _can_i(cluster, "watch", "nodes")
    assert not _can_i(cluster, "get", "secrets", "-n", NS)
    assert not _can_i(cluster, "update", "workflowruns.stepstone.io", "-n", NS)  # patch only
    runner_sa = cluster.get("serviceaccount", f"{RELEASE}-runner", NS)
    assert runner_sa is not None and runner_sa["automountServiceAccountToken"] is False

    # Structured logs: every line of the operator's log is a JSON object.
    log = cluster.kubectl("logs", f"deployment/{RELEASE}", "-n", NS).stdout
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "msg"} <= set(line) for line in lines)


def test_the_examples_complete_and_the_diagnostics_work(
    chart_cluster: ClusterHandle, env: dict[str, str]
) -> None:
    chart_cluster.kubectl("apply", "-n", NS, "-f", str(REPO / "examples"))
    chart_cluster.kubectl(
        "wait", "--for=condition=Succeeded", "wfrun/order-42", "wfrun/hello-world",
        "-n", NS, "--timeout=120s", timeout=150,
    )  # fmt: skip
    run = docblocks.run("diagnose-run", env=env)
    assert "Succeeded" in run[0].stdout
    steps = docblocks.run("diagnose-steps", env=env)
    assert "greet" in steps[0].stdout, steps[0].stdout
    assert "stepstone/order-42@" in steps[1].stdout
    operator = docblocks.run("diagnose-operator", env=env)
    assert operator[2].stdout.strip() == "yes"
    logs = docblocks.run("logs", env=env)
    assert '"stepstone/hello-world@' in logs[1].stdout


# -- the scenarios of the kind suite, against the chart's operator ------------------------------


def test_a_run_completes(target: scenarios.Target) -> None:
    scenarios.a_run_completes(target)


def test_a_deleted_pod_is_recovered_with_replay_and_can_be_forked(
    target: scenarios.Target,
) -> None:
    scenarios.a_deleted_pod_is_recovered_with_replay(target, "e2e-recover")
    scenarios.fork_from_a_step(target, "e2e-recover", from_step=4)


def test_cancel_then_resume(target: scenarios.Target) -> None:
    scenarios.cancel_then_resume(target)


# -- more of the docs ---------------------------------------------------------------------------


def test_runs_in_another_namespace(env: dict[str, str]) -> None:
    docblocks.run("other-namespace", env=env)


def test_helm_test_fails_when_its_run_fails_and_upgrades_migrate(
    chart_cluster: ClusterHandle, env: dict[str, str], helm_args: list[str]
) -> None:
    chart = str(REPO / "charts" / "stepstone")
    chart_cluster.helm(
        "upgrade", RELEASE, chart, "-n", NS, "--reuse-values", "--wait",
        "--set", "test.entrypoint=stepstone.testing:no_such_workflow", *helm_args,
    )  # fmt: skip
    failed = chart_cluster.helm("test", RELEASE, "-n", NS, check=False)
    assert failed.returncode != 0, failed.stdout
    [log] = docblocks.run("helm-test-failed", env=env)
    assert "no_such_workflow" in log.stdout, log.stdout
    restored = [*helm_args, "--set", "test.entrypoint=stepstone.testing:hello"]
    docblocks.run("upgrade", env=env, helm_args=restored)  # the pre-upgrade hook migrates again
    history = chart_cluster.helm("history", RELEASE, "-n", NS, "-o", "json").stdout
    assert [r["status"] for r in json.loads(history)][-1] == "deployed"
    chart_cluster.helm("test", RELEASE, "-n", NS)


def test_a_stuck_finalizer_is_removed_as_the_docs_say(
    chart_cluster: ClusterHandle, env: dict[str, str]
) -> None:
    chart_cluster.apply(
        {
            "apiVersion": "stepstone.io/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": "stuck-run", "finalizers": ["example.com/hold"]},
            "spec": {"workflowRef": {"name": "hello"}, "input": {"name": "stuck"}},
        },
        namespace=NS,
    )
    chart_cluster.kubectl("delete", "wfrun", "stuck-run", "-n", NS, "--wait=false")
    shown = docblocks.run("finalizer", env=env)
    assert "example.com/hold" in shown[0].stdout
    wait_for(
        lambda: chart_cluster.get("workflowrun", "stuck-run", NS) is None,
        30,
        description="the WorkflowRun gone once its foreign finalizer is removed",
    )


def test_namespaced_mode_holds_nothing_cluster_scoped(
    chart_cluster: ClusterHandle, env: dict[str, str], helm_args: list[str]
) -> None:
    shown = docblocks.run("namespaced-mode", env=env, helm_args=helm_args)
    assert shown[1].stdout.strip() == "yes"
    cluster = chart_cluster
    assert cluster.get("clusterrole", f"{RELEASE}-operator") is None
    assert cluster.get("clusterrolebinding", f"{RELEASE}-operator") is None
    for ns in (NS, "team-a"):
        assert cluster.get("role", f"{RELEASE}-operator", ns) is not None
    assert not _can_i(cluster, "list", "pods", "--all-namespaces")
    assert not _can_i(cluster, "create", "pods", "-n", "default")
    assert not _can_i(cluster, "watch", "nodes")
    args = _operator_pod(cluster)["spec"]["containers"][0]["args"]
    assert {"--namespace=stepstone", "--namespace=team-a", "--no-nodes"} <= set(args)
    team_a = scenarios.Target(cluster, "team-a", flows_image="stepstone:dev")
    scenarios.a_run_completes(team_a, "namespaced-run")


def test_backup_and_restore_of_an_external_database(env: dict[str, str], tmp_path: Path) -> None:
    outputs = docblocks.run("backup-external", env=env, cwd=tmp_path)
    assert (tmp_path / "stepstone.dump").stat().st_size > 0
    assert "stepstone/hello-world@" in outputs[2].stdout, outputs[2].stdout


# -- uninstall, reinstall, purge ----------------------------------------------------------------


def test_uninstall_keeps_the_crds_the_runs_and_their_records(
    chart_cluster: ClusterHandle, env: dict[str, str], database_url: str
) -> None:
    docblocks.run("uninstall", env=env)
    cluster = chart_cluster
    assert cluster.get("deployment", RELEASE, NS) is None
    assert cluster.get("role", f"{RELEASE}-operator", NS) is None
    for crd in ("workflows.stepstone.io", "workflowruns.stepstone.io"):
        assert cluster.get("crd", crd) is not None
    assert scenarios.status(scenarios.Target(cluster, NS, ""), "e2e-complete")["phase"] == (
        "Succeeded"
    )
    store = Store.connect(database_url)
    try:
        run_ids = {r.run_id for r in store.list_runs(limit=100)}
    finally:
        store.close()
    assert any(r.startswith(f"{NS}/e2e-recover@") for r in run_ids), run_ids


def test_reinstalling_adopts_the_kept_crds_and_carries_on(
    chart_cluster: ClusterHandle,
    env: dict[str, str],
    helm_args: list[str],
    target: scenarios.Target,
) -> None:
    before = scenarios.status(target, "e2e-complete")
    docblocks.run("external-install", env=env, helm_args=helm_args)
    assert scenarios.status(target, "e2e-complete") == before  # finished runs stay finished
    scenarios.a_run_completes(target, "after-reinstall")


def test_purge_removes_everything(chart_cluster: ClusterHandle, env: dict[str, str]) -> None:
    docblocks.run("purge", env=env)
    for crd in ("workflows.stepstone.io", "workflowruns.stepstone.io"):
        wait_for(
            lambda crd=crd: chart_cluster.get("crd", crd) is None,
            60,
            description=f"CRD {crd} deleted",
        )
    with pytest.raises(CommandFailed):
        chart_cluster.helm("status", RELEASE, "-n", NS)
