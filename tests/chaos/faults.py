"""Faults the chaos suite injects, each a small function of the environment and a random
choice, returning what it did (or None when there was nothing to do it to)."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.operator import OperatorProcess
from tests.substrate.postgres import LocalPostgres


@dataclass
class Environment:
    cluster: ClusterHandle
    kubelet: KubeletHandle
    operator: OperatorProcess
    postgres: LocalPostgres | None
    namespace: str
    workflow: str
    rng: random.Random
    cancelled: set[str] = field(default_factory=set)
    forks: list[str] = field(default_factory=list)
    silenced: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running_pods(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.cluster.objects(
                "pod", self.namespace, "app.kubernetes.io/component=runner"
            )
            if p.get("status", {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ]

    def runs(self) -> list[dict[str, Any]]:
        return self.cluster.objects("workflowrun", self.namespace)


def _pick(env: Environment, items: list[Any]) -> Any | None:
    return env.rng.choice(items) if items else None


def delete_pod(env: Environment) -> str | None:
    pod = _pick(env, env.running_pods())
    if pod is None:
        return None
    name = pod["metadata"]["name"]
    env.cluster.kubectl("delete", "pod", name, "-n", env.namespace, "--wait=false", check=False)
    return name


def kill_process(env: Environment) -> str | None:
    pod = _pick(env, env.running_pods())
    if pod is None:
        return None
    name = pod["metadata"]["name"]
    try:
        env.kubelet.kill_pod_process(env.namespace, name, signal.SIGKILL)
    except Exception:
        return None
    return name


def silence_node(env: Environment) -> str | None:
    """Silence one node (never both: Kubernetes stops evicting when every node is down) and
    restore it about 20 s later."""
    with env.lock:
        if env.silenced:
            return None
        nodes = env.kubelet.nodes
        node = env.rng.choice(nodes)
        env.kubelet.silence_node(node)
        env.silenced[node] = time.monotonic() + 20
    return node


def restore_nodes(env: Environment, *, all_now: bool = False) -> None:
    with env.lock:
        for node, due in list(env.silenced.items()):
            if all_now or time.monotonic() >= due:
                env.kubelet.restore_node(node)
                del env.silenced[node]


def restart_operator(env: Environment) -> str | None:
    env.operator.kill()
    time.sleep(env.rng.uniform(0.5, 2.0))  # down for a moment, as a crashed pod would be
    env.operator.start()
    return f"pid {env.operator.proc.pid if env.operator.proc else '?'}"


def restart_postgres(env: Environment) -> str | None:
    if env.postgres is None:
        return None
    env.postgres.stop("fast")
    env.postgres.start()
    return "fast shutdown and start"


def _patch(env: Environment, name: str, spec: dict[str, Any]) -> None:
    env.cluster.kubectl(
        "patch",
        "wfrun",
        name,
        "-n",
        env.namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": spec}),
        check=False,
    )


def cancel_run(env: Environment) -> str | None:
    active = [
        r["metadata"]["name"]
        for r in env.runs()
        if (r.get("status") or {}).get("phase") == "Running"
        and r["metadata"]["name"] not in env.cancelled
    ]
    name = _pick(env, active)
    if name is None:
        return None
    _patch(env, name, {"state": "Cancelled"})
    env.cancelled.add(name)
    return name


def resume_run(env: Environment) -> str | None:
    done = [
        r["metadata"]["name"]
        for r in env.runs()
        if (r.get("status") or {}).get("phase") == "Cancelled"
    ]
    name = _pick(env, done)
    if name is None:
        return None
    _patch(env, name, {"state": "Running"})
    env.cancelled.discard(name)
    return name


def fork_run(env: Environment) -> str | None:
    candidates = [
        r
        for r in env.runs()
        if (r.get("status") or {}).get("completedSteps", 0) >= 2
        and not r["metadata"]["name"].startswith("fork-")
    ]
    source = _pick(env, candidates)
    if source is None:
        return None
    name = f"fork-{len(env.forks)}-{source['metadata']['name']}"[:55]
    step = env.rng.randint(1, int(source["status"]["completedSteps"]) + 1)
    env.cluster.apply(
        {
            "apiVersion": "stepstone.io/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": {
                "workflowRef": {"name": env.workflow},
                "forkFrom": {"run": source["metadata"]["name"], "step": step},
            },
        },
        namespace=env.namespace,
    )
    env.forks.append(name)
    return f"{name} from step {step}"


FAULTS: dict[str, Callable[[Environment], str | None]] = {
    "delete runner pod": delete_pod,
    "SIGKILL runner process": kill_process,
    "silence a node": silence_node,
    "kill and restart the operator": restart_operator,
    "restart Postgres": restart_postgres,
    "cancel a run": cancel_run,
    "resume a cancelled run": resume_run,
    "fork a run": fork_run,
}
WEIGHTS = {
    "delete runner pod": 4,
    "SIGKILL runner process": 4,
    "silence a node": 1,
    "kill and restart the operator": 1,
    "restart Postgres": 1,
    "cancel a run": 2,
    "resume a cancelled run": 2,
    "fork a run": 2,
}
