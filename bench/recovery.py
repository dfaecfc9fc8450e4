"""Recovery on the local control plane: how fast a lost runner pod is replaced and the run
continues, how fast an applied WorkflowRun gets its pod, and 200 runs applied at once.

    python -m bench.recovery [--trials 20] [--runs 200] [--kubeconfig PATH --database-url URL]

Without --kubeconfig it starts a private cluster, a Postgres and the operator (as the
integration tests do). Times are taken by this process: a watch on pods records when each
ADDED event arrives; step starts are stamped by Postgres's clock on the same machine.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from kubernetes import client, config, watch

from bench._common import machine, percentile, save, server_facts
from tests.substrate import wait_for
from tests.substrate.fixtures import session_cluster, session_scratch
from tests.substrate.operator import OperatorProcess
from tests.substrate.postgres import LocalPostgres
from tests.substrate.tools import REPO
from tests.workflows import effects

GROUP, VERSION = "stepstone.io", "v1alpha1"


class PodWatch:
    """Records when each pod's ADDED event reaches us."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.added: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

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


def workflow(name: str, entrypoint: str, db: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "image": "stepstone:dev",
            "entrypoint": entrypoint,
            "env": [{"name": "PYTHONPATH", "value": str(REPO)}, {"name": effects.ENV, "value": db}],
            "recovery": {"maxAttempts": 5, "backoffSeconds": 5},
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


def started_at(db: str, run_id: str, tag: str) -> list[float]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM at) FROM test_effects WHERE run_id = %s AND tag = %s"
            " ORDER BY at",
            (run_id, tag),
        ).fetchall()
    return [float(r[0]) for r in rows]


def recovery_trials(ns: str, db: str, trials: int) -> dict[str, Any]:
    custom, core = client.CustomObjectsApi(), client.CoreV1Api()
    pods = PodWatch(ns)
    apply_to_pod, to_replacement, to_next_step = [], [], []
    try:
        for i in range(trials):
            a, r, n = _trial(custom, core, pods, ns, db, f"recover-{i}")
            apply_to_pod.append(a)
            to_replacement.append(r)
            to_next_step.append(n)
            print(
                f"trial {i + 1}/{trials}: apply->pod {a:.3f} s, delete->replacement "
                f"{r:.3f} s, delete->next step {n:.3f} s",
                flush=True,
            )
    finally:
        pods.stop()

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50": round(statistics.median(values), 3),
            "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3),
        }

    return {
        "trials": trials,
        "apply_to_pod_created_s": summary(apply_to_pod),
        "pod_deleted_to_replacement_created_s": summary(to_replacement),
        "pod_deleted_to_next_step_started_s": summary(to_next_step),
    }


def _trial(
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    pods: PodWatch,
    ns: str,
    db: str,
    name: str,
) -> tuple[float, float, float]:
    """One run: apply it, delete its pod mid-step, time the replacement and the next step."""
    t_apply = time.time()
    custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "workflowruns", run(name, "recoverable", {})
    )
    run_id = wait_for(
        lambda: status(custom, ns, name).get("runId"), 30, description=f"{name} run id"
    )
    wait_for(
        lambda: started_at(db, run_id, "long_started"),
        60,
        0.05,
        description=f"{name} in its long step",
    )
    apply_to_pod = pods.added[f"{name}-1"] - t_apply
    t_delete = time.time()
    core.delete_namespaced_pod(f"{name}-1", ns)
    wait_for(lambda: f"{name}-2" in pods.added, 30, 0.02, description=f"{name} replacement pod")
    to_replacement = pods.added[f"{name}-2"] - t_delete
    starts = wait_for(
        lambda: (s := started_at(db, run_id, "long_started"))[1:] and s,
        60,
        0.05,
        description=f"{name} next step",
    )
    wait_for(
        lambda: status(custom, ns, name).get("phase") == "Succeeded",
        60,
        description=f"{name} succeeded",
    )
    return apply_to_pod, to_replacement, starts[1] - t_delete


def many_runs(ns: str, count: int, operator_pid: int, metrics_port: int) -> dict[str, Any]:
    custom = client.CustomObjectsApi()
    proc = psutil.Process(operator_pid)
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak.append(proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    reconciles_before = _reconciles(metrics_port)
    started = time.time()
    for i in range(count):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "workflowruns", run(f"many-{i}", "short", {"steps": 3})
        )
    created = time.time() - started

    def finished() -> bool:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "workflowruns")["items"]
        phases = [
            (i.get("status") or {}).get("phase")
            for i in items
            if i["metadata"]["name"].startswith("many-")
        ]
        return sum(p == "Succeeded" for p in phases) == count

    wait_for(finished, 900, 1.0, description=f"{count} runs Succeeded")
    elapsed = time.time() - started
    done.set()
    reconciles = _reconciles(metrics_port) - reconciles_before
    return {
        "runs": count,
        "apply_seconds": round(created, 1),
        "all_succeeded_after_s": round(elapsed, 1),
        "operator_peak_rss_mib": round(max(peak) / 2**20, 1),
        "reconciles": int(reconciles),
        "reconciles_per_second": round(reconciles / elapsed, 1),
    }


def _reconciles(port: int) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("stepstone_reconcile_seconds_count"):
            return float(line.split()[-1])
    return 0.0


@contextmanager
def environment(args: argparse.Namespace) -> Iterator[tuple[str, OperatorProcess]]:
    with ExitStack() as stack:
        if args.kubeconfig:
            raise SystemExit(
                "--kubeconfig needs the operator's pid and metrics port; "
                "run without it to start everything here"
            )
        handle = stack.enter_context(session_cluster(session_scratch()))
        pg = LocalPostgres.create()
        pg.start()
        stack.callback(pg.destroy)
        db = pg.url_for("bench")
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        effects.install(db)
        handle.kubectl("apply", "-f", str(REPO / "crds"))
        op = OperatorProcess(
            kubeconfig=Path(handle.kubeconfig),
            database_url=db,
            log=Path(handle.state_dir) / "operator.log",
            extra_args=("--migrate",),
        )
        op.start()
        stack.callback(op.stop)
        config.load_kube_config(str(handle.kubeconfig))
        yield db, op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    with environment(args) as (db, op):
        core = client.CoreV1Api()
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": ns}})
        wait_for(
            lambda: core.list_namespaced_service_account(ns).items,
            30,
            description="the namespace's default ServiceAccount",
        )
        core.create_namespaced_secret(
            ns,
            {
                "metadata": {"name": "stepstone-database"},
                "data": {"url": base64.b64encode(db.encode()).decode()},
            },
        )
        custom = client.CustomObjectsApi()
        for name, entry in (
            ("recoverable", "bench.flows:recoverable"),
            ("short", "bench.flows:short"),
        ):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "workflows", workflow(name, entry, db)
            )
        wait_for(
            lambda: op.alive() and _reconciles(op.metrics_port) >= 0,
            60,
            0.5,
            description="the operator's metrics",
            ignore=(OSError,),
        )
        recovery = recovery_trials(ns, db, args.trials)
        many = many_runs(ns, args.runs, op.proc.pid if op.proc else 0, op.metrics_port)
        result = {
            "recovery": recovery,
            "many_runs": many,
            "postgres": server_facts(db),
            "machine": machine(),
        }
    r = recovery
    print()
    print(
        f"apply -> pod created:            p50 {r['apply_to_pod_created_s']['p50']:.3f} s  "
        f"p95 {r['apply_to_pod_created_s']['p95']:.3f} s"
    )
    print(
        f"pod deleted -> replacement pod:  p50 "
        f"{r['pod_deleted_to_replacement_created_s']['p50']:.3f} s  p95 "
        f"{r['pod_deleted_to_replacement_created_s']['p95']:.3f} s   (goal: p50 under 1 s)"
    )
    print(
        f"pod deleted -> next step starts: p50 "
        f"{r['pod_deleted_to_next_step_started_s']['p50']:.3f} s  p95 "
        f"{r['pod_deleted_to_next_step_started_s']['p95']:.3f} s"
    )
    print(
        f"{many['runs']} runs applied at once: all Succeeded after "
        f"{many['all_succeeded_after_s']} s; operator peak RSS {many['operator_peak_rss_mib']} "
        f"MiB; {many['reconciles_per_second']} reconciles/s"
    )
    if not args.no_save:
        print(f"saved {save('recovery', result)}")


if __name__ == "__main__":
    main()
