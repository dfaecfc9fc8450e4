"""Drive the chaos: start the runs, inject faults at random moments for a while, restore
everything, wait for every run to finish, check, and summarise."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.check import Findings, check
from tests.chaos.faults import FAULTS, WEIGHTS, Environment, restore_nodes
from tests.substrate import wait_for
from tests.substrate.tools import REPO
from tests.workflows import effects
from tests.workflows.chaos import COUNTER_DDL

WORKFLOW = "chaos"


@dataclass(frozen=True)
class ChaosConfig:
    runs: int = 50
    steps: int = 8
    step_seconds: tuple[float, float] = (1.0, 5.0)
    duration: float = 120.0
    pause: tuple[float, float] = (0.5, 2.5)
    settle_timeout: float = 600.0
    seed: int = 0


@dataclass
class Report:
    config: ChaosConfig
    injected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    log: list[tuple[float, str, str]] = field(default_factory=list)
    losses: Counter[str] = field(default_factory=Counter)
    findings: Findings | None = None
    seconds: float = 0.0

    def table(self) -> str:
        assert self.findings is not None
        f = self.findings
        lines = [
            f"chaos: {self.config.runs} runs, seed {self.config.seed}, "
            f"{self.config.duration:.0f} s of faults, {self.seconds:.0f} s in all",
            "",
            f"{'fault':34} {'injected':>8} {'no target':>9}",
        ]
        for name in FAULTS:
            lines.append(f"{name:34} {self.injected[name]:>8} {self.skipped[name]:>9}")
        lines += ["", f"{'pod losses recovered, by reason':34} {'count':>8}"]
        for reason, n in sorted(self.losses.items()):
            lines.append(f"{reason:34} {n:>8}")
        lines += [
            "",
            f"runs checked: {f.runs} ({f.forks} forks); steps checked: "
            f"{f.steps_checked}; in-flight steps that ran again after a loss: "
            f"{f.reruns_of_in_flight_steps}",
            "result: "
            + (
                "every run succeeded with the right result; every completed step ran exactly once"
                if not f.problems
                else f"{len(f.problems)} PROBLEM(S)"
            ),
        ]
        lines += [f"  - {p}" for p in f.problems[:50]]
        return "\n".join(lines)


def workflow(db_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "stepstone.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": WORKFLOW},
        "spec": {
            "image": "stepstone:dev",
            "entrypoint": "tests.workflows.chaos:worker",
            "env": [
                {"name": "PYTHONPATH", "value": str(REPO)},
                {"name": effects.ENV, "value": db_url},
            ],
            "recovery": {
                "maxAttempts": 100,
                "backoffSeconds": 1,
                "maxBackoffSeconds": 4,
                "heartbeatTimeoutSeconds": 10,
                "startTimeoutSeconds": 120,
            },
            "cancelGracePeriodSeconds": 5,
        },
    }


def run_chaos(env: Environment, db_url: str, config: ChaosConfig) -> Report:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(COUNTER_DDL)
    report = Report(config)
    started = time.monotonic()
    env.cluster.apply(workflow(db_url), namespace=env.namespace)
    for i in range(config.runs):
        env.cluster.apply(
            {
                "apiVersion": "stepstone.io/v1alpha1",
                "kind": "WorkflowRun",
                "metadata": {"name": f"run-{i}"},
                "spec": {
                    "workflowRef": {"name": WORKFLOW},
                    "input": {
                        "seed": config.seed * 1000 + i,
                        "steps": config.steps,
                        "low": config.step_seconds[0],
                        "high": config.step_seconds[1],
                    },
                },
            },
            namespace=env.namespace,
        )
    _inject(env, config, report, started)
    _restore(env)
    _finish_all(env, config)
    runs = env.runs()
    report.losses = _losses(env)
    report.findings = check(db_url, runs)
    report.seconds = time.monotonic() - started
    return report


def _inject(env: Environment, config: ChaosConfig, report: Report, started: float) -> None:
    stop = threading.Event()
    names = list(FAULTS)
    weights = [WEIGHTS[n] for n in names]
    end = time.monotonic() + config.duration
    while time.monotonic() < end:
        # the schedule's own pacing, not a wait for a condition
        stop.wait(env.rng.uniform(*config.pause))
        restore_nodes(env)
        name = env.rng.choices(names, weights)[0]
        try:
            target = FAULTS[name](env)
        except Exception as exc:
            target = None
            report.log.append((time.monotonic() - started, name, f"failed: {exc}"))
        if target is None:
            report.skipped[name] += 1
            continue
        report.injected[name] += 1
        report.log.append((time.monotonic() - started, name, target))
        print(f"[{time.monotonic() - started:6.1f}s] {name}: {target}", flush=True)


def _restore(env: Environment) -> None:
    restore_nodes(env, all_now=True)
    if not env.operator.alive():
        env.operator.start()
    if env.postgres is not None and not env.postgres.running():
        env.postgres.start()
    for run in env.runs():
        if (run.get("spec") or {}).get("state", "Running") != "Running":
            env.cluster.kubectl(
                "patch",
                "wfrun",
                run["metadata"]["name"],
                "-n",
                env.namespace,
                "--type",
                "merge",
                "-p",
                json.dumps({"spec": {"state": "Running"}}),
            )


def _finish_all(env: Environment, config: ChaosConfig) -> None:
    def finished() -> bool:
        phases = [(r.get("status") or {}).get("phase") for r in env.runs()]
        return all(p in ("Succeeded", "Failed") for p in phases)

    wait_for(
        finished,
        config.settle_timeout,
        1.0,
        description="every run (and fork) to finish after the chaos",
    )


def _losses(env: Environment) -> Counter[str]:
    out = env.cluster.kubectl(
        "get",
        "events",
        "-n",
        env.namespace,
        "--field-selector",
        "reason=PodLost",
        "-o",
        "json",
        check=False,
    ).stdout
    counts: Counter[str] = Counter()
    for item in (json.loads(out).get("items") if out else []) or []:
        counts[item.get("message", "?").split(":", 1)[0]] += int(item.get("count") or 1)
    return counts


def new_rng(seed: int) -> random.Random:
    return random.Random(seed)
