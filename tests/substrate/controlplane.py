"""The control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Why these flags: a real control plane, tuned so that tests see node loss in seconds.
- etcd without fsync (the data is thrown away after each run).
- kube-apiserver advertises 127.0.0.1 (pods are local processes, they dial it there), serves a
  certificate that also covers kubernetes.default.svc, signs service-account tokens, and adds
  tolerations of `toleration_seconds` (5 s) for not-ready/unreachable nodes to every pod.
- kube-controller-manager runs all default controllers (service accounts, garbage collector,
  node lifecycle, deployments, jobs, ...) with its own per-controller service accounts, a node
  monitor grace period of `node_monitor_grace_period` (8 s) checked every second, and a high
  eviction rate (so several lost nodes are tainted at once). Note: with every node of a zone
  NotReady the node lifecycle controller stops evicting ("full disruption"); keep one node
  healthy, which is why the kubelet registers two nodes by default.
- kube-scheduler with defaults. No leader election anywhere (one instance of each).
"""

from __future__ import annotations

import socket
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import urllib3

from tests.substrate.kubeapi import Credentials, KubeClient, write_kubeconfig
from tests.substrate.pki import FRONT_PROXY_CLIENT, KeyPair, Pki
from tests.substrate.services import ServiceSpec

CLUSTER_NAME = "stepstone-substrate"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kubelet: int
    kubelet_control: int

    @staticmethod
    def free() -> Ports:
        """Distinct free ports on 127.0.0.1 (held open together so none is picked twice)."""
        with ExitStack() as stack:
            ports = []
            for _ in range(7):
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        return Ports(*ports)


@dataclass(frozen=True)
class ControlPlaneSettings:
    """The timings tests depend on; see docs/test-substrate.md."""

    node_monitor_grace_period: float = 8.0
    node_monitor_period: float = 1.0
    node_startup_grace_period: float = 20.0
    toleration_seconds: int = 5
    node_eviction_rate: float = 10.0


@dataclass(frozen=True)
class Layout:
    """Where a cluster's state lives under its state dir (`.cluster/` for make cluster-up)."""

    root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def pki(self) -> Pki:
        return Pki.at(self.pki_dir)

    @property
    def kubeconfigs(self) -> Path:
        return self.root / "kubeconfigs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    def component_kubeconfig(self, name: str) -> Path:
        return self.kubeconfigs / f"{name}.kubeconfig"


def api_url(ports: Ports) -> str:
    return f"https://127.0.0.1:{ports.apiserver}"


def credentials(server: str, pki: Pki, pair: KeyPair) -> Credentials:
    return Credentials(
        server=server,
        ca_pem=pki.ca.cert.read_bytes(),
        cert_pem=pair.cert.read_bytes(),
        key_pem=pair.key.read_bytes(),
    )


def write_kubeconfigs(layout: Layout, ports: Ports) -> None:
    """The admin kubeconfig plus one per component (each with its own identity)."""
    pki = layout.pki
    server = api_url(ports)
    write_kubeconfig(
        layout.kubeconfig, credentials(server, pki, pki.admin), name=CLUSTER_NAME, user="admin"
    )
    for name, pair in (
        ("controller-manager", pki.controller_manager),
        ("scheduler", pki.scheduler),
        ("kubelet", pki.kubelet),
    ):
        write_kubeconfig(
            layout.component_kubeconfig(name),
            credentials(server, pki, pair),
            name=CLUSTER_NAME,
            user=name,
        )


def _http_ok(url: str) -> bool:
    """An unauthenticated GET returning 200. For health endpoints only: TLS is not verified,
    since the controller-manager and scheduler serve self-signed certificates."""
    http = urllib3.PoolManager(cert_reqs="CERT_NONE", retries=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return http.request("GET", url, timeout=2.0).status == 200


def _seconds(value: float) -> str:
    return f"{value:g}s"


def control_plane_services(
    layout: Layout, ports: Ports, bin_dir: Path, settings: ControlPlaneSettings
) -> list[ServiceSpec]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler, in start order."""
    pki = layout.pki
    etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
    peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
    etcd = ServiceSpec(
        name="etcd",
        argv=(
            str(bin_dir / "etcd"),
            "--name=substrate",
            f"--data-dir={layout.data / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=substrate={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ),
        ready=lambda: _http_ok(f"{etcd_url}/health"),
        ready_timeout=30.0,
    )
    admin = KubeClient(credentials(api_url(ports), pki, pki.admin), timeout=3.0)
    apiserver = ServiceSpec(
        name="kube-apiserver",
        argv=(
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={layout.data / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--default-not-ready-toleration-seconds={settings.toleration_seconds}",
            f"--default-unreachable-toleration-seconds={settings.toleration_seconds}",
            f"--kubelet-client-certificate={pki.apiserver_kubelet_client.cert}",
            f"--kubelet-client-key={pki.apiserver_kubelet_client.key}",
            f"--kubelet-certificate-authority={pki.ca.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            # API aggregation (and quiet components: they read this CA from the cluster).
            f"--requestheader-client-ca-file={pki.ca.cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
            f"--proxy-client-key-file={pki.front_proxy_client.key}",
            "--profiling=false",
            "--v=1",
        ),
        ready=lambda: admin.get("/readyz") is not None,
        ready_timeout=90.0,
    )

    def component_flags(name: str, port: int) -> tuple[str, ...]:
        kubeconfig = layout.component_kubeconfig(name)
        return (
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={layout.data / (name + '-certs')}",
            "--leader-elect=false",
            "--v=1",
        )

    controller_manager = ServiceSpec(
        name="kube-controller-manager",
        argv=(
            str(bin_dir / "kube-controller-manager"),
            *component_flags("controller-manager", ports.controller_manager),
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            f"--node-monitor-period={_seconds(settings.node_monitor_period)}",
            f"--node-monitor-grace-period={_seconds(settings.node_monitor_grace_period)}",
            f"--node-startup-grace-period={_seconds(settings.node_startup_grace_period)}",
            f"--node-eviction-rate={settings.node_eviction_rate:g}",
            f"--secondary-node-eviction-rate={settings.node_eviction_rate:g}",
        ),
        ready=lambda: _http_ok(f"https://127.0.0.1:{ports.controller_manager}/healthz"),
        ready_timeout=60.0,
    )
    scheduler = ServiceSpec(
        name="kube-scheduler",
        argv=(
            str(bin_dir / "kube-scheduler"),
            *component_flags("scheduler", ports.scheduler),
        ),
        ready=lambda: _http_ok(f"https://127.0.0.1:{ports.scheduler}/healthz"),
        ready_timeout=60.0,
    )
    return [etcd, apiserver, controller_manager, scheduler]
