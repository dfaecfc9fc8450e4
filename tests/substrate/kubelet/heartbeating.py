"""Node heartbeats: register each node, renew its Lease, post its status.

Why: the controller-manager's node lifecycle controller decides a node is lost when its Lease
in kube-node-lease stops being renewed for --node-monitor-grace-period, then taints it and
evicts its pods. Renewing every `lease_renew_interval` (2 s against a grace of 8 s) keeps a
node Ready; `silence()` stops renewals and status posts (and, in the syncer, all reactions to
the node's pods) to simulate a network partition or a dead node whose processes still run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import threading
import time
import uuid

from tests.substrate.kubeapi import ApiError, JsonDict, KubeClient
from tests.substrate.kubelet.jsonlog import JsonLog
from tests.substrate.kubelet.settings import KubeletSettings

LEASE_NAMESPACE = "kube-node-lease"
#: Labels every substrate node carries (a test can select them to tell substrate from kind).
SUBSTRATE_LABEL = "node.stepstone.dev/substrate"


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class NodeAgent:
    """One node's registration and heartbeats."""

    def __init__(
        self,
        *,
        name: str,
        api: KubeClient,
        settings: KubeletSettings,
        log: JsonLog,
        kubelet_port: int,
    ):
        self.name = name
        self._api = api
        self._settings = settings
        self._log = log
        self._kubelet_port = kubelet_port
        self._silenced = threading.Event()
        self._wake = threading.Event()
        self._node_uid: str | None = None
        self._kubelet_version = "v0.0.0"
        self._boot_id = str(uuid.uuid4())

    @property
    def silenced(self) -> bool:
        return self._silenced.is_set()

    def silence(self) -> None:
        self._silenced.set()
        self._log.info("node.silenced", node=self.name)

    def restore(self) -> None:
        self._silenced.clear()
        self._wake.set()
        self._log.info("node.restored", node=self.name)

    def _node(self) -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": _arch(),
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": _arch(),
                    SUBSTRATE_LABEL: "true",
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {},
        }

    def _status(self, existing: JsonDict | None) -> JsonDict:
        now = _now()
        previous = {
            c.get("type"): c for c in ((existing or {}).get("status") or {}).get("conditions") or []
        }

        def condition(kind: str, status: str, reason: str, message: str) -> JsonDict:
            before = previous.get(kind) or {}
            transition = (
                before.get("lastTransitionTime") if before.get("status") == status else None
            )
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition or now,
            }

        capacity = dict(self._settings.capacity)
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._kubelet_port}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, self.name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)),
                "bootID": self._boot_id,
                "kernelVersion": os.uname().release,
                "osImage": "stepstone test substrate (pods run as local processes)",
                "containerRuntimeVersion": "substrate://0.1.0",
                "kubeletVersion": self._kubelet_version,
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }

    def register(self, stop: threading.Event) -> None:
        """Create the Node (or take over an existing one) and post its status; retries."""
        delay = 0.2
        while not stop.is_set():
            try:
                self._kubelet_version = str(self._api.get("/version").get("gitVersion", "v0.0.0"))
                try:
                    node = self._api.create("/api/v1/nodes", self._node())
                    self._log.info("node.registered", node=self.name)
                except ApiError as exc:
                    if exc.status != 409:
                        raise
                    node = self._api.get(f"/api/v1/nodes/{self.name}")
                    self._log.info("node.reregistered", node=self.name)
                self._node_uid = node["metadata"]["uid"]
                self.post_status()
                self.renew_lease()
                return
            except ApiError as exc:
                self._log.warning("node.register_failed", node=self.name, error=str(exc))
                stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def post_status(self) -> None:
        try:
            existing = self._api.get(f"/api/v1/nodes/{self.name}")
        except ApiError as exc:
            if not exc.not_found:
                raise
            self._log.warning("node.missing", node=self.name)
            existing = self._api.create("/api/v1/nodes", self._node())
        self._node_uid = existing["metadata"]["uid"]
        self._api.patch(
            f"/api/v1/nodes/{self.name}/status",
            {"status": self._status(existing)},
            patch_type="strategic",
        )

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self.name}"
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": self._settings.lease_duration_seconds,
            "renewTime": _micro_now(),
        }
        try:
            self._api.patch(path, {"spec": spec})
        except ApiError as exc:
            if not exc.not_found:
                raise
            owner = []
            if self._node_uid:
                owner = [
                    {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self._node_uid}
                ]
            self._api.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.name,
                        "namespace": LEASE_NAMESPACE,
                        "ownerReferences": owner,
                    },
                    "spec": spec,
                },
            )

    def run(self, stop: threading.Event) -> None:
        """Heartbeat loop: renew the Lease often, post status now and then, unless silenced."""
        next_status = time.monotonic() + self._settings.status_update_interval
        while not stop.is_set():
            woken = self._wake.is_set()
            self._wake.clear()
            if not self.silenced:
                try:
                    self.renew_lease()
                    if woken or time.monotonic() >= next_status:
                        self.post_status()
                        next_status = time.monotonic() + self._settings.status_update_interval
                except ApiError as exc:
                    self._log.warning("node.heartbeat_failed", node=self.name, error=str(exc))
            self._wake.wait(self._settings.lease_renew_interval)
            if stop.is_set():
                return
