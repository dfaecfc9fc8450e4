"""The kubelet process: wires nodes, watchers, the pod syncer and the HTTP endpoints together.

Threads: one heartbeat loop per node; one watcher per node (list, then watch pods with
spec.nodeName=<node>, relisting every `relist_interval` and after any error); a ticker that
re-syncs every known pod every `sync_interval` (process exits, memory, back-off deadlines);
a small pool that runs the syncs; and the two HTTP servers. Any exception in a sync is logged
and the pod is retried on the next tick: one odd pod never stops the kubelet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

from tests.substrate.kubeapi import ApiError, KubeClient
from tests.substrate.kubelet import runtime as rt
from tests.substrate.kubelet.heartbeating import NodeAgent
from tests.substrate.kubelet.jsonlog import JsonLog, quiet_libraries
from tests.substrate.kubelet.serving import (
    control_server,
    kubelet_api_server,
    serve_in_background,
)
from tests.substrate.kubelet.settings import KubeletSettings
from tests.substrate.kubelet.starting import ContainerStarter
from tests.substrate.kubelet.syncing import PodSyncer

#: Written under the root dir once the kubelet serves: its pid and endpoints.
STATE_FILE = "kubelet.json"


class Dispatcher:
    """Runs `sync(uid)` on a pool; never twice at once for one uid, and never drops a request
    that arrives while that uid is being synced (it runs again right after)."""

    def __init__(self, sync: Callable[[str], None], *, workers: int, log: JsonLog):
        self._sync = sync
        self._log = log
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync")
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, uid: str) -> None:
        with self._lock:
            if uid in self._busy:
                self._again.add(uid)
                return
            self._busy.add(uid)
        self._pool.submit(self._run, uid)

    def _run(self, uid: str) -> None:
        try:
            self._sync(uid)
        except Exception as exc:
            self._log.exception("pod.sync_failed", exc=exc, uid=uid)
        with self._lock:
            if uid in self._again:
                self._again.discard(uid)
                again = True
            else:
                self._busy.discard(uid)
                again = False
        if again:
            self._pool.submit(self._run, uid)


def probe_mount_namespaces(settings: KubeletSettings, log: JsonLog) -> bool:
    """Whether containers get their volumes bind-mounted in a private mount namespace."""
    if settings.mount_namespaces == "off":
        return False
    result = subprocess.run(
        [str(settings.python), "-I", "-S", str(rt.SHIM), "--probe-mounts"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    ok = result.returncode == 0
    log.info("kubelet.mount_namespaces", available=ok, detail=result.stderr.strip())
    if not ok and settings.mount_namespaces == "on":
        raise SystemExit(f"mount namespaces required but unavailable: {result.stderr.strip()}")
    return ok


class Kubelet:
    def __init__(self, settings: KubeletSettings):
        self.settings = settings
        self.log = JsonLog.open(settings.log_file, component="kubelet", debug=settings.debug)
        quiet_libraries()
        pool = settings.workers + 3 * len(settings.nodes) + 4
        self.api = KubeClient.from_kubeconfig(settings.kubeconfig, pool_size=pool)
        self.stop = threading.Event()
        #: Set once nodes are registered and pods known (the control endpoint's /healthz).
        self.ready = threading.Event()
        self.runtime = rt.Runtime(python=settings.python)
        api_host, api_port = self.api.creds.host_port
        self.mounts_enabled = probe_mount_namespaces(settings, self.log)
        self.nodes: dict[str, NodeAgent] = {}
        starter = ContainerStarter(
            api=self.api,
            runtime=self.runtime,
            settings=settings,
            log=self.log,
            api_host=api_host,
            api_port=api_port,
            mounts_enabled=self.mounts_enabled,
        )
        self.syncer = PodSyncer(
            api=self.api,
            runtime=self.runtime,
            settings=settings,
            log=self.log,
            is_silenced=lambda node: node in self.nodes and self.nodes[node].silenced,
            starter=starter,
        )
        self.dispatcher = Dispatcher(self.syncer.sync, workers=settings.workers, log=self.log)

    def _watch_node(self, node: str) -> None:
        """List and watch the pods bound to `node`, feeding the syncer; forever."""
        selector = f"spec.nodeName={node}"
        while not self.stop.is_set():
            try:
                listing = self.api.get("/api/v1/pods", fieldSelector=selector)
                seen = set()
                for pod in listing.get("items") or []:
                    uid = self.syncer.update(pod)
                    seen.add(uid)
                    self.dispatcher.submit(uid)
                for uid in set(self.syncer.known(node)) - seen:
                    self.syncer.mark_gone(uid)
                    self.dispatcher.submit(uid)
                version = listing["metadata"]["resourceVersion"]
                for event in self.api.watch(
                    "/api/v1/pods",
                    timeout_seconds=int(self.settings.relist_interval),
                    fieldSelector=selector,
                    resourceVersion=version,
                    allowWatchBookmarks=True,
                ):
                    if self.stop.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "BOOKMARK" or "metadata" not in obj:
                        continue
                    uid = self.syncer.update(obj)
                    if kind == "DELETED":
                        self.syncer.mark_gone(uid)
                    self.dispatcher.submit(uid)
            except ApiError as exc:
                if exc.status != 410:
                    self.log.warning("pods.watch_failed", node=node, error=str(exc))
                    self.stop.wait(1.0)
            except Exception as exc:
                self.log.exception("pods.watch_crashed", exc=exc, node=node)
                self.stop.wait(1.0)

    def _tick(self) -> None:
        while not self.stop.wait(self.settings.sync_interval):
            self.runtime.reap()
            for uid in self.syncer.known():
                self.dispatcher.submit(uid)

    def _adopt(self) -> None:
        """At start: learn the pods bound to our nodes (their running containers are picked
        up from disk), and remove what is left of pods deleted while no kubelet ran."""
        live: set[str] = set()
        for node in self.settings.nodes:
            while not self.stop.is_set():
                try:
                    listing = self.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")
                    live |= {self.syncer.update(p) for p in listing.get("items") or []}
                    break
                except ApiError as exc:
                    self.log.warning("pods.list_failed", node=node, error=str(exc))
                    self.stop.wait(1.0)
        self.syncer.remove_leftovers(live)

    def run(self) -> None:
        settings = self.settings
        settings.root_dir.mkdir(parents=True, exist_ok=True)
        kubelet_port = 0
        if settings.port and settings.tls_cert_file and settings.tls_key_file:
            api_server = kubelet_api_server(
                port=settings.port,
                syncer=self.syncer,
                cert_file=settings.tls_cert_file,
                key_file=settings.tls_key_file,
                client_ca_file=settings.client_ca_file,
                log=self.log,
            )
            kubelet_port = api_server.server_address[1]
            serve_in_background(api_server, "kubelet-api")
        for name in settings.nodes:
            self.nodes[name] = NodeAgent(
                name=name, api=self.api, settings=settings, log=self.log, kubelet_port=kubelet_port
            )
        control = control_server(
            port=settings.control_port,
            syncer=self.syncer,
            nodes=self.nodes,
            ready=self.ready,
            log=self.log,
        )
        serve_in_background(control, "control")
        control_port = control.server_address[1]

        for agent in self.nodes.values():
            agent.register(self.stop)
        self._adopt()
        for agent in self.nodes.values():
            threading.Thread(
                target=agent.run, args=(self.stop,), name=f"heartbeat-{agent.name}", daemon=True
            ).start()
            threading.Thread(
                target=self._watch_node, args=(agent.name,), name=f"watch-{agent.name}", daemon=True
            ).start()
        threading.Thread(target=self._tick, name="ticker", daemon=True).start()

        state = {
            "pid": os.getpid(),
            "control_url": f"http://127.0.0.1:{control_port}",
            "kubelet_port": kubelet_port,
            "nodes": list(settings.nodes),
            "mount_namespaces": self.mounts_enabled,
        }
        rt.write_json(settings.root_dir / STATE_FILE, state)
        self.ready.set()
        self.log.info("kubelet.ready", state=state)
        self.stop.wait()
        self.log.info("kubelet.stopping")


def main(settings: KubeletSettings) -> None:
    kubelet = Kubelet(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        kubelet.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kubelet.run()
