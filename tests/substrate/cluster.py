"""A whole local cluster: control plane + test kubelet (+ extra services), up and down.

Used by `make cluster-up` / `make cluster-down` (state in `.cluster/`) and by the pytest
session fixture (state in a temp dir, free ports, processes die with pytest). Start-up:

1. a fresh PKI and kubeconfigs; etcd; kube-apiserver (until /readyz: the components exit if
   its RBAC roles are not bootstrapped yet); then controller-manager, scheduler and kubelet;
2. ready when the apiserver's /readyz, both components' /healthz pass, every node is Ready
   and untainted, and the `default` ServiceAccount and `kube-root-ca.crt` exist;
3. then `extra_services` (Postgres, the stepstone operator, ...), each with its own probe;
4. `cluster.json` records what runs where (read by `status`, `down` and the fixtures).

CLI: `python -m tests.substrate.cluster up|down|status [--state-dir .cluster]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.substrate.controlplane import (
    ControlPlaneSettings,
    Layout,
    Ports,
    api_url,
    control_plane_services,
    write_kubeconfigs,
)
from tests.substrate.kubeapi import ApiError, KubeClient
from tests.substrate.kubelet.runtime import kill_pod_processes
from tests.substrate.pki import generate_pki
from tests.substrate.services import ServiceError, ServiceSpec, Supervisor
from tests.substrate.stepstone_services import (
    database_url_file,
    kubelet_image_args,
    operator_service,
    postgres_service,
)
from tests.substrate.tools import REPO, ToolsMissingError, find_tools

DEFAULT_STATE_DIR = REPO / ".cluster"
DEFAULT_NODES = ("node-1", "node-2")
KUBELET_SERVICE = "kubelet"


@dataclass(frozen=True)
class ClusterInfo:
    """What runs where; saved as `cluster.json` in the state dir."""

    state_dir: str
    kubeconfig: str
    api_url: str
    bin_dir: str
    nodes: list[str]
    kubelet_control_url: str
    kubelet_root: str
    kubelet_log: str
    ports: dict[str, int]
    started_in_seconds: float

    @staticmethod
    def load(state_dir: Path) -> ClusterInfo | None:
        try:
            return ClusterInfo(**json.loads(Layout(state_dir).cluster_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self) -> None:
        Layout(Path(self.state_dir)).cluster_file.write_text(json.dumps(self.__dict__, indent=1))


#: A function from the started cluster to a service to start after it (e.g. Postgres).
ExtraService = Callable[[ClusterInfo], ServiceSpec]


@dataclass(frozen=True)
class ClusterConfig:
    state_dir: Path
    bin_dir: Path
    ports: Ports = field(default_factory=Ports.free)
    settings: ControlPlaneSettings = field(default_factory=ControlPlaneSettings)
    nodes: tuple[str, ...] = DEFAULT_NODES
    #: SIGKILL everything if the starting process dies (the pytest fixture sets it).
    die_with_parent: bool = False
    python: Path = Path(sys.executable)
    kubelet_args: tuple[str, ...] = field(default_factory=kubelet_image_args)
    extra_services: Sequence[ExtraService] = ()


def extra_services() -> list[ExtraService]:
    """Services `make cluster-up` starts once the cluster is ready: Postgres, then the
    stepstone operator (with the CRDs applied). Each is a function of the ClusterInfo returning
    a ServiceSpec; they start in order, each awaited."""
    return [postgres_service, operator_service]


def kubelet_service(config: ClusterConfig, layout: Layout) -> ServiceSpec:
    pki = layout.pki
    ports = config.ports
    return ServiceSpec(
        name=KUBELET_SERVICE,
        argv=(
            str(config.python),
            "-m",
            "tests.substrate.kubelet",
            f"--kubeconfig={layout.component_kubeconfig('kubelet')}",
            f"--nodes={','.join(config.nodes)}",
            f"--root-dir={layout.kubelet_root}",
            f"--port={ports.kubelet}",
            f"--tls-cert-file={pki.kubelet_serving.cert}",
            f"--tls-private-key-file={pki.kubelet_serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--control-port={ports.kubelet_control}",
            f"--log-file={layout.logs / 'kubelet.jsonl'}",
            *config.kubelet_args,
        ),
        env={"PYTHONPATH": str(REPO)},
        cwd=REPO,
        ready=(layout.kubelet_root / "kubelet.json").exists,
        ready_timeout=60.0,
        stop_timeout=5.0,
    )


def _cluster_ready(api: KubeClient, nodes: Sequence[str]) -> bool:
    """Nodes Ready without not-ready taints; default SA and root CA ConfigMap published."""
    listing = api.get("/api/v1/nodes")
    ready = set()
    for node in listing.get("items") or []:
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        taints = [
            t for t in node.get("spec", {}).get("taints") or [] if "not-ready" in t.get("key", "")
        ]
        if conditions.get("Ready") == "True" and not taints:
            ready.add(node["metadata"]["name"])
    if not set(nodes) <= ready:
        return False
    try:
        api.get("/api/v1/namespaces/default/serviceaccounts/default")
        api.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
    except ApiError:
        return False
    return True


def _wait(predicate: Callable[[], bool], timeout: float, what: str, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for record in supervisor.records():
            if not record.alive():
                raise ServiceError(f"{record.name} died while waiting for {what}; see {record.log}")
        try:
            if predicate():
                return
        except ApiError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise ServiceError(f"timed out after {timeout:g} s waiting for {what} ({last})")


def start_cluster(config: ClusterConfig) -> ClusterInfo:
    """Start everything in `config.state_dir` (wiping its data) and wait until it is ready."""
    started = time.monotonic()
    layout = Layout(config.state_dir)
    stale_dirs = (
        layout.data,
        layout.pki_dir,
        layout.kubeconfigs,
        layout.kubelet_root,
        layout.run,
        layout.logs,
    )
    for stale in stale_dirs:
        shutil.rmtree(stale, ignore_errors=True)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.cluster_file.unlink(missing_ok=True)
    generate_pki(layout.pki_dir, node_names=config.nodes)
    write_kubeconfigs(layout, config.ports)
    supervisor = Supervisor(layout.run, layout.logs, die_with_parent=config.die_with_parent)
    try:
        etcd, apiserver, controller_manager, scheduler = control_plane_services(
            layout, config.ports, config.bin_dir, config.settings
        )
        supervisor.wait_ready(etcd, supervisor.start(etcd))
        # The components exit if the apiserver's RBAC is not bootstrapped yet: wait for /readyz.
        supervisor.wait_ready(apiserver, supervisor.start(apiserver))
        rest = [controller_manager, scheduler, kubelet_service(config, layout)]
        records = [supervisor.start(spec) for spec in rest]
        for spec, record in zip(rest, records, strict=True):
            supervisor.wait_ready(spec, record)
        api = KubeClient.from_kubeconfig(layout.kubeconfig, timeout=5.0)
        _wait(lambda: _cluster_ready(api, config.nodes), 60.0, "nodes Ready", supervisor)
        kubelet_state = json.loads((layout.kubelet_root / "kubelet.json").read_text())
        info = ClusterInfo(
            state_dir=str(layout.root),
            kubeconfig=str(layout.kubeconfig),
            api_url=api_url(config.ports),
            bin_dir=str(config.bin_dir),
            nodes=list(config.nodes),
            kubelet_control_url=kubelet_state["control_url"],
            kubelet_root=str(layout.kubelet_root),
            kubelet_log=str(layout.logs / "kubelet.jsonl"),
            ports=dict(config.ports.__dict__),
            started_in_seconds=round(time.monotonic() - started, 1),
        )
        info.save()
        for make_spec in config.extra_services:
            spec = make_spec(info)
            supervisor.wait_ready(spec, supervisor.start(spec))
    except BaseException:
        stop_cluster(config.state_dir)
        raise
    return info


def stop_cluster(state_dir: Path) -> list[str]:
    """Stop every recorded service (last started first) and kill the pods' processes.

    Returns the names of the services that were stopped. Logs stay in `<state_dir>/logs`.
    """
    layout = Layout(state_dir)
    supervisor = Supervisor(layout.run, layout.logs)
    names = [r.name for r in supervisor.records()]
    supervisor.stop_all()
    kill_pod_processes(layout.kubelet_root)
    layout.cluster_file.unlink(missing_ok=True)
    return names


def _rss_mib(pid: int) -> float:
    try:
        return round(float(psutil.Process(pid).memory_info().rss) / 2**20, 1)
    except psutil.Error:
        return 0.0


def cluster_status(state_dir: Path) -> dict[str, Any]:
    """What `cluster.json` says, and each service's pid, liveness, memory (RSS) and log."""
    layout = Layout(state_dir)
    supervisor = Supervisor(layout.run, layout.logs)
    services: dict[str, dict[str, Any]] = {}
    for record in supervisor.records():
        alive = record.alive()
        services[record.name] = {
            "pid": record.pid,
            "alive": alive,
            "rss_mib": _rss_mib(record.pid) if alive else 0.0,
            "log": record.log,
        }
    info = ClusterInfo.load(state_dir)
    return {
        "cluster": info.__dict__ if info else None,
        "services": services,
        "total_rss_mib": round(sum(s["rss_mib"] for s in services.values()), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.substrate.cluster",
        description="The local test cluster: real control plane, test kubelet, no Docker.",
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--nodes", default=",".join(DEFAULT_NODES))
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()

    if args.command == "status":
        print(json.dumps(cluster_status(state_dir), indent=1))
        return 0
    if args.command == "down":
        stopped = stop_cluster(state_dir)
        print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
        return 0

    status = cluster_status(state_dir)
    services = status["services"]
    if status["cluster"] and services and all(s["alive"] for s in services.values()):
        print(f"already running; KUBECONFIG={Layout(state_dir).kubeconfig}")
        return 0
    stop_cluster(state_dir)
    try:
        bin_dir = find_tools(build=True)
    except ToolsMissingError as exc:
        print(f"cluster-up: {exc}", file=sys.stderr)
        return 2
    nodes = tuple(n for n in args.nodes.split(",") if n)
    config = ClusterConfig(
        state_dir=state_dir, bin_dir=bin_dir, nodes=nodes, extra_services=extra_services()
    )
    try:
        info = start_cluster(config)
    except ServiceError as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        return 1
    print(f"cluster up in {info.started_in_seconds} s: {info.api_url}, nodes {', '.join(nodes)}")
    print(f"export KUBECONFIG={info.kubeconfig} PATH={info.bin_dir}:$PATH")
    print(f"logs: {Layout(state_dir).logs}/")
    url_file = database_url_file(state_dir)
    if url_file.exists():
        print(f"stepstone operator running; database: {url_file.read_text().strip()}")
        print("try: kubectl apply -f examples/ && kubectl get wfrun -w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
