"""The test kubelet's settings: parsed once from the command line into a frozen object.

The defaults are tuned for tests: heartbeats every 2 s (the controller-manager's node monitor
grace period is 8 s), restart back-off from 1 s up to 30 s (a real kubelet: 10 s up to 5 min).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}


@dataclass(frozen=True)
class KubeletSettings:
    kubeconfig: Path
    nodes: tuple[str, ...]
    root_dir: Path
    #: The kubelet API (HTTPS, for `kubectl logs`); 0 disables it.
    port: int = 0
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: CA for the apiserver's client certificate on the kubelet API (None: no client auth).
    client_ca_file: Path | None = None
    #: The fault-control endpoint (plain HTTP on 127.0.0.1); 0 picks a free port.
    control_port: int = 0
    capacity: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    lease_renew_interval: float = 2.0
    lease_duration_seconds: int = 40
    status_update_interval: float = 20.0
    relist_interval: float = 30.0
    sync_interval: float = 0.5
    restart_backoff_base: float = 1.0
    restart_backoff_max: float = 30.0
    #: "auto" (probe at start), "on" (required) or "off" (never bind-mount volumes).
    mount_namespaces: str = "auto"
    workers: int = 8
    log_file: Path | None = None
    debug: bool = False
    #: The interpreter whose bin dir comes first on containers' PATH.
    python: Path = Path(sys.executable)
    #: Images stand-ins: a container of this image gets this folder first on its PYTHONPATH,
    #: as if the image had the folder's packages installed (no images are pulled here).
    image_paths: Mapping[str, Path] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> KubeletSettings:
    parser = argparse.ArgumentParser(
        prog="python -m tests.substrate.kubelet",
        description="Test kubelet: runs the pods bound to its nodes as local processes.",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--nodes", default="node-1", help="comma-separated node names")
    parser.add_argument("--root-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert-file", type=Path)
    parser.add_argument("--tls-private-key-file", type=Path)
    parser.add_argument("--client-ca-file", type=Path)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument(
        "--capacity",
        default=",".join(f"{k}={v}" for k, v in DEFAULT_CAPACITY.items()),
        help="resource=quantity,... reported as each node's capacity and allocatable",
    )
    parser.add_argument("--lease-renew-interval", type=float, default=2.0)
    parser.add_argument("--status-update-interval", type=float, default=20.0)
    parser.add_argument("--relist-interval", type=float, default=30.0)
    parser.add_argument("--sync-interval", type=float, default=0.5)
    parser.add_argument("--restart-backoff-base", type=float, default=1.0)
    parser.add_argument("--restart-backoff-max", type=float, default=30.0)
    parser.add_argument("--mount-namespaces", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--log-file", type=Path)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument(
        "--image-path",
        action="append",
        default=[],
        metavar="IMAGE=DIR",
        help="containers of IMAGE get DIR first on PYTHONPATH (repeatable)",
    )
    args = parser.parse_args(argv)
    image_paths = {}
    for item in args.image_path:
        image, sep, folder = item.partition("=")
        if not sep or not image or not folder:
            parser.error(f"--image-path wants IMAGE=DIR, not {item!r}")
        image_paths[image] = Path(folder).resolve()
    capacity = dict(DEFAULT_CAPACITY)
    for item in filter(None, args.capacity.split(",")):
        key, _, value = item.partition("=")
        capacity[key.strip()] = value.strip()
    nodes = tuple(n.strip() for n in args.nodes.split(",") if n.strip())
    if not nodes:
        parser.error("--nodes names no node")
    return KubeletSettings(
        kubeconfig=args.kubeconfig,
        nodes=nodes,
        root_dir=args.root_dir,
        port=args.port,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        control_port=args.control_port,
        capacity=capacity,
        lease_renew_interval=args.lease_renew_interval,
        status_update_interval=args.status_update_interval,
        relist_interval=args.relist_interval,
        sync_interval=args.sync_interval,
        restart_backoff_base=args.restart_backoff_base,
        restart_backoff_max=args.restart_backoff_max,
        mount_namespaces=args.mount_namespaces,
        workers=args.workers,
        log_file=args.log_file,
        debug=args.debug,
        image_paths=image_paths,
    )
