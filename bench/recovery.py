"""Recovery on the local control plane: how fast each kind of lost runner pod is replaced
and its run continues; how fast an applied WorkflowRun gets its pod; and the operator's
memory and reconcile rate with 200 and 1,000 runs applied at once.

    python -m bench.recovery [--trials 20] [--scale 200,1000]

It starts a private cluster, a Postgres and the operator (as the integration tests do). Times
are taken by this process: a watch on pods records when each ADDED event arrives; the start of
the next step is stamped by Postgres's clock on the same machine. The kubelet admits at most
60 pods per node, so 1,000 runs queue instead of starting 1,000 Python processes at once.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import psycopg
from kubernetes import client, config, watch

from bench._common import machine, percentile, save, server_facts
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.operator import OperatorProcess
from tests.substrate.stepstone_services import (
    PrivateStepstone,
    kubelet_image_args,
    private_stepstone,
)
from tests.substrate.tools import REPO
from tests.workflows import effects

GROUP, VERSION = "stepstone.io", "v1alpha1"
PODS_PER_NODE = 60


class PodWatch:
    """Records when each pod's ADDED event reaches us."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.added: dict[str, float] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        core = client.CoreV1Api()
        while not self._stop.is_set():
            w = watch.Watch()
            for event in w.stream(core.list_namespaced_pod, self.namespace, timeout_seconds=30):
                if event["type"] == "ADDED":
                    self.added.setdefault(event["object"].metadata.name, time.time())
                if self._stop.is_set():
                    w.stop()
                    break

    def stop(self) -> None:
        self._stop.set()


def workflow(name: str, entrypoint: str, db: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "image": "stepstone:dev",
            "entrypoint": entrypoint,
            "env": [{"name": "PYTHONPATH", "value": str(REPO)}, {"name": effects.ENV, "value": db}],
            "recovery": {
                "maxAttempts": 5,
                "backoffSeconds": 5,
                "heartbeatTimeoutSeconds": 5,
                "startTimeoutSeconds": 1800,
            },
            **spec,
        },
    }


def run(name: str, wf: str, spec_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": wf}, "input": spec_input},
    }


def status(custom: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any]:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "workflowruns", name)
    return dict(obj.get("status") or {})


def started_at(db: str, run_id: str) -> list[float]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM at) FROM test_effects WHERE run_id = %s AND tag ="
            " 'long_started' ORDER BY at",
            (run_id,),
        ).fetchall()
    return [float(r[0]) for r in rows]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(percentile(values, 95), 3),
        "max": round(max(values), 3),
        "trials": len(values),
    }


@dataclass
class Bench:
    env: PrivateStepstone
    kubelet: KubeletHandle
    ns: str
    pods: PodWatch

    @property
    def cluster(self) -> ClusterHandle:
        return self.env.cluster

    @property
    def db(self) -> str:
        return self.env.database_url

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi()

    def trial(self, name: str, lose: Callable[[str], None]) -> tuple[float, float, float, str]:
        """Apply a run, lose its pod mid-step with ``lose``, time the replacement and the
        next step. Returns (apply->pod, loss->replacement, loss->next step, loss reason)."""
        t_apply = time.time()
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "workflowruns", run(name, "recoverable", {})
        )
        run_id = wait_for(
            lambda: status(self.custom, self.ns, name).get("runId"),
            30,
            description=f"{name} run id",
        )
        wait_for(
            lambda: started_at(self.db, run_id), 60, 0.05, description=f"{name} in its long step"
        )
        apply_to_pod = self.pods.added[f"{name}-1"] - t_apply
        t_loss = time.time()
        lose(f"{name}-1")
        wait_for(
            lambda: f"{name}-2" in self.pods.added, 120, 0.02, description=f"{name} replacement pod"
        )
        replaced = self.pods.added[f"{name}-2"] - t_loss
        starts = wait_for(
            lambda: (s := started_at(self.db, run_id))[1:] and s,
            120,
            0.05,
            description=f"{name} next step",
        )
        done = wait_for(
            lambda: (s := status(self.custom, self.ns, name)).get("phase") == "Succeeded" and s,
            120,
            description=f"{name} succeeded",
        )
        return apply_to_pod, replaced, starts[1] - t_loss, done["lastFailure"]["reason"]


def loss_kinds(b: Bench) -> dict[str, Callable[[str], None]]:
    core = client.CoreV1Api()

    def silence(pod: str) -> None:
        node = core.read_namespaced_pod(pod, b.ns).spec.node_name
        b.kubelet.silence_node(node)
        threading.Timer(40, b.kubelet.restore_node, args=(node,)).start()

    return {
        "PodDeleted (kubectl delete pod)": lambda pod: core.delete_namespaced_pod(pod, b.ns),
        "RunnerCrashed (SIGKILL)": lambda pod: b.kubelet.kill_pod_process(b.ns, pod),
        "Evicted (Eviction API)": lambda pod: b.kubelet.evict_pod(b.ns, pod),
        "Unresponsive (SIGSTOP, 5 s heartbeat timeout)": lambda pod: b.kubelet.kill_pod_process(
            b.ns, pod, signal.SIGSTOP
        ),
        "NodeLost (node silenced)": silence,
    }


def recovery(b: Bench, trials: int) -> dict[str, Any]:
    counts = {
        "PodDeleted (kubectl delete pod)": trials,
        "RunnerCrashed (SIGKILL)": trials // 2,
        "Evicted (Eviction API)": trials // 2,
        "Unresponsive (SIGSTOP, 5 s heartbeat timeout)": 3,
        "NodeLost (node silenced)": 3,
    }
    out: dict[str, Any] = {}
    apply_to_pod: list[float] = []
    for kind, lose in loss_kinds(b).items():
        replaced, next_step, reasons = [], [], set()
        for i in range(max(1, counts[kind])):
            name = f"r{len(apply_to_pod)}-{uuid.uuid4().hex[:4]}"
            if kind.startswith("NodeLost"):
                wait_for(
                    lambda: not b.kubelet.silenced_nodes(),
                    60,
                    description="both nodes healthy before the next node loss",
                )
                wait_for(lambda: _nodes_ready(b.cluster), 60, 0.5, description="both nodes Ready")
            a, r, n, reason = b.trial(name, lose)
            apply_to_pod.append(a)
            replaced.append(r)
            next_step.append(n)
            reasons.add(reason)
            print(
                f"{kind} {i + 1}: loss->replacement {r:.3f} s, loss->next step {n:.3f} s "
                f"({reason})",
                flush=True,
            )
        out[kind] = {
            "loss_to_replacement_pod_s": summary(replaced),
            "loss_to_next_step_s": summary(next_step),
            "classified_as": sorted(reasons),
        }
    return {"by_kind": out, "apply_to_pod_created_s": summary(apply_to_pod)}


def _nodes_ready(cluster: ClusterHandle) -> bool:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    return all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        and not (n["spec"].get("taints") or [])
        for n in nodes
    )


def scale(b: Bench, count: int, operator: OperatorProcess) -> dict[str, Any]:
    """``count`` runs applied at once: time until all succeeded, operator peak RSS and
    reconcile rate (from its own metrics)."""
    ns = b.env.namespace(f"scale-{count}-{uuid.uuid4().hex[:4]}")
    b.cluster.apply(workflow("short", "bench.flows:short", b.db), namespace=ns)
    proc = psutil.Process(operator.proc.pid if operator.proc else 0)
    rss = [proc.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            rss.append(proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    before = _reconciles(operator.metrics_port)
    started = time.time()
    custom = client.CustomObjectsApi()
    for i in range(count):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "workflowruns", run(f"many-{i}", "short", {"steps": 3})
        )
    applied = time.time() - started

    def succeeded() -> int:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "workflowruns")["items"]
        return sum((i.get("status") or {}).get("phase") == "Succeeded" for i in items)

    last = [0.0]

    def all_done() -> bool:
        n = succeeded()
        if time.time() - last[0] > 15:
            last[0] = time.time()
            print(f"  {count} runs: {n} succeeded after {time.time() - started:.0f} s", flush=True)
        return n == count

    wait_for(all_done, 3600, 2.0, description=f"{count} runs Succeeded")
    elapsed = time.time() - started
    done.set()
    reconciles = _reconciles(operator.metrics_port) - before
    return {
        "runs": count,
        "apply_seconds": round(applied, 1),
        "all_succeeded_after_s": round(elapsed, 1),
        "runs_per_second": round(count / elapsed, 2),
        "operator_peak_rss_mib": round(max(rss) / 2**20, 1),
        "operator_idle_rss_mib": round(rss[0] / 2**20, 1),
        "reconciles": int(reconciles),
        "reconciles_per_second": round(reconciles / elapsed, 1),
    }


def _reconciles(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("stepstone_reconcile_seconds_count"):
            return float(line.split()[-1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scale", default="200,1000", help="run counts for the scale test")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    kubelet_args = (
        *kubelet_image_args(),
        f"--capacity=cpu=16,memory=64Gi,pods={PODS_PER_NODE},ephemeral-storage=100Gi",
    )
    with private_stepstone("bench", kubelet_args=kubelet_args) as env:
        assert env.cluster.kubelet is not None
        config.load_kube_config(str(env.cluster.kubeconfig))
        wait_for(
            lambda: _reconciles(env.operator.metrics_port) >= 0,
            60,
            0.5,
            description="the operator's metrics",
            ignore=(OSError,),
        )
        ns = env.namespace(f"bench-{uuid.uuid4().hex[:6]}")
        env.cluster.apply(
            workflow("recoverable", "bench.flows:recoverable", env.database_url), namespace=ns
        )
        pods = PodWatch(ns)
        bench = Bench(env, env.cluster.kubelet, ns, pods)
        try:
            result: dict[str, Any] = {"recovery": recovery(bench, args.trials)}
        finally:
            pods.stop()
        result["scale"] = [scale(bench, int(n), env.operator) for n in args.scale.split(",") if n]
        result["postgres"] = server_facts(env.database_url)
        result["machine"] = machine()
        result["pods_per_node"] = PODS_PER_NODE
    for kind, r in result["recovery"]["by_kind"].items():
        print(
            f"{kind:48} replacement p50 {r['loss_to_replacement_pod_s']['p50']:7.3f} s  "
            f"next step p50 {r['loss_to_next_step_s']['p50']:7.3f} s"
        )
    a = result["recovery"]["apply_to_pod_created_s"]
    print(f"apply -> pod created: p50 {a['p50']:.3f} s, p95 {a['p95']:.3f} s")
    for s in result["scale"]:
        print(
            f"{s['runs']} runs at once: all Succeeded after {s['all_succeeded_after_s']} s; "
            f"operator peak RSS {s['operator_peak_rss_mib']} MiB; "
            f"{s['reconciles_per_second']} reconciles/s"
        )
    if not args.no_save:
        print(f"saved {save('recovery', result)}")


if __name__ == "__main__":
    main()
