"""What tests hold: a handle on a running cluster (kubectl, helm, env) and on its kubelet.

Why a handle and not a client library: tests drive the cluster through the real, freshly built
kubectl and helm (what users run), so the same tests run on kind. The kubelet handle is the
substrate's fault injection; on a cluster without the test kubelet it is None.
"""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tests.substrate.kubeapi import JsonDict, KubeClient
from tests.substrate.services import Supervisor
from tests.substrate.waiting import wait_for


class CommandFailed(subprocess.CalledProcessError):
    """A kubectl/helm call failed; its str() shows the command's stdout and stderr."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
            f"stdout: {(self.stdout or '').strip()[-2000:]}\n"
            f"stderr: {(self.stderr or '').strip()[-2000:]}"
        )


def _run(
    argv: list[str],
    *,
    env: Mapping[str, str],
    check: bool,
    input: str | None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        env=dict(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandFailed(result.returncode, argv, result.stdout, result.stderr)
    return result


class KubeletHandle:
    """Fault injection on the test kubelet, through its control endpoint.

    `nodes`: the node names it serves. Pods are addressed by namespace and name.
    """

    def __init__(
        self,
        *,
        control_url: str,
        root_dir: Path,
        log_file: Path,
        api: KubeClient,
        supervisor: Supervisor | None,
        service: str = "kubelet",
    ):
        self.control_url = control_url.rstrip("/")
        self.root_dir = root_dir
        self.log_file = log_file
        self._api = api
        self._supervisor = supervisor
        self._service = service

    def _call(self, method: str, path: str, body: JsonDict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.control_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"kubelet control {method} {path}: {exc.code} {detail}") from exc

    # ----- nodes -----

    @property
    def nodes(self) -> list[str]:
        return [n["name"] for n in self._call("GET", "/v1/nodes")]

    def silence_node(self, node: str) -> None:
        """Stop the node's heartbeats and every reaction to its pods (processes keep running)."""
        self._call("POST", f"/v1/nodes/{node}/silence")

    def restore_node(self, node: str) -> None:
        """Resume heartbeats and pod syncing at once (a pod deleted meanwhile is stopped)."""
        self._call("POST", f"/v1/nodes/{node}/restore")

    def silenced_nodes(self) -> list[str]:
        return [n["name"] for n in self._call("GET", "/v1/nodes") if n["silenced"]]

    # ----- pods -----

    def pods(self) -> list[JsonDict]:
        """What the kubelet runs: namespace, name, uid, node, pod_dir, log_dir, containers
        (per container: attempt, phase, pid, exit_code, log_path, log_paths)."""
        result: list[JsonDict] = self._call("GET", "/v1/pods")
        return result

    def pod(self, namespace: str, pod: str) -> JsonDict:
        result: JsonDict = self._call("GET", f"/v1/pods/{namespace}/{pod}")
        return result

    def pid(self, namespace: str, pod: str, container: str | None = None) -> int | None:
        """The main process id of the (first or named) container's current attempt."""
        containers = self.pod(namespace, pod)["containers"]
        entry = containers[container] if container else next(iter(containers.values()))
        pid: int | None = entry["pid"]
        return pid

    def log_path(
        self, namespace: str, pod: str, container: str | None = None, attempt: int | None = None
    ) -> Path:
        """The file holding a container attempt's output (default: first container, latest).

        Works after the pod is gone too: logs stay under <root>/logs/<ns>_<pod>_<uid>/.
        """
        try:
            containers = self.pod(namespace, pod)["containers"]
            entry = containers[container] if container else next(iter(containers.values()))
            paths = [Path(p) for p in entry["log_paths"]]
            if not paths:
                raise LookupError(f"{namespace}/{pod} has not started {container or 'a container'}")
            return paths[attempt] if attempt is not None else paths[-1]
        except RuntimeError:
            index = "*" if attempt is None else str(attempt)
            pattern = f"{namespace}_{pod}_*/{container or '*'}/{index}.log"
            found = sorted(self.root_dir.glob(f"logs/{pattern}"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise LookupError(
                    f"no log for {namespace}/{pod} under {self.root_dir}/logs"
                ) from None
            return found[-1]

    def kill_pod_process(
        self,
        namespace: str,
        pod: str,
        signal: int = signals.SIGKILL,
        container: str | None = None,
    ) -> list[int]:
        """Send `signal` to the main process of the pod's running container(s); returns pids."""
        result = self._call(
            "POST",
            f"/v1/pods/{namespace}/{pod}/signal",
            {"signal": int(signal), "container": container},
        )
        pids: list[int] = result["pids"]
        return pids

    def evict_pod(self, namespace: str, pod: str) -> None:
        """Evict through the Eviction API (as `kubectl drain` does; PDBs apply)."""
        self._api.create(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod, "namespace": namespace},
            },
        )

    def node_pressure_evict(
        self, namespace: str, pod: str, *, message: str | None = None, grace_seconds: int = 0
    ) -> None:
        """Evict as a kubelet under memory pressure does: stop the pod's processes and leave
        it Failed with reason Evicted (the pod object is not deleted)."""
        body: JsonDict = {"grace_seconds": grace_seconds}
        if message:
            body["message"] = message
        self._call("POST", f"/v1/pods/{namespace}/{pod}/evict", body)

    # ----- the kubelet process -----

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.control_url + "/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _require_supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("this cluster's kubelet was not started by the substrate")
        return self._supervisor

    def kill(self) -> None:
        """SIGKILL the kubelet process (its pods' processes keep running, as on a node)."""
        self._require_supervisor().kill(self._service)
        wait_for(lambda: not self.alive(), 10, description="the kubelet to die")

    def start(self) -> None:
        """Start the kubelet again (same flags); it re-adopts running containers."""
        self._require_supervisor().restart(self._service, ready=self.alive)

    def restart(self) -> None:
        self.kill()
        self.start()


@dataclass
class ClusterHandle:
    """A running cluster, for tests: `.kubectl(...)`, `.helm(...)`, `.env`, `.kubelet`."""

    kubeconfig: Path
    bin_dir: Path
    api_url: str
    #: The substrate's kubelet, or None on a cluster without it (kind).
    kubelet: KubeletHandle | None = None
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.env:
            path = os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")])
            self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}
            if self.state_dir is not None:
                # helm keeps repositories and caches per user; keep this cluster's apart.
                for kind in ("CACHE", "CONFIG", "DATA"):
                    self.env[f"HELM_{kind}_HOME"] = str(self.state_dir / "helm" / kind.lower())

    @cached_property
    def api(self) -> KubeClient:
        """A small JSON client with the admin's credentials (for what kubectl makes awkward)."""
        return KubeClient.from_kubeconfig(self.kubeconfig)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; raises CommandFailed if `check`."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        return _run(argv, env=self.env, check=check, input=input, timeout=timeout)

    def kubectl_json(self, *args: str, timeout: float = 60.0) -> Any:
        """`kubectl ... -o json`, decoded."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def apply(self, manifest: str | JsonDict, *, namespace: str | None = None) -> str:
        """`kubectl apply -f -` of a YAML string or an object (sent as JSON); returns output."""
        ns = ["-n", namespace] if namespace else []
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.kubectl("apply", *ns, "-f", "-", input=text).stdout

    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonDict | None:
        """One object as a dict, or None if it does not exist."""
        ns = ["-n", namespace] if namespace else []
        result = self.kubectl(
            "get", kind, name, *ns, "-o", "json", "--ignore-not-found", check=True
        )
        return json.loads(result.stdout) if result.stdout.strip() else None

    def objects(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[JsonDict]:
        """Objects of a kind (in a namespace, matching a label selector) as dicts."""
        args = ["get", kind, "-n", namespace] if namespace else ["get", kind, "-A"]
        if selector:
            args += ["-l", selector]
        items: list[JsonDict] = self.kubectl_json(*args)["items"]
        return items

    def helm(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against this cluster."""
        argv = [str(self.bin_dir / "helm"), f"--kubeconfig={self.kubeconfig}", *args]
        return _run(argv, env=self.env, check=check, input=input, timeout=timeout)
