"""What must hold after the chaos, whatever was injected when.

For every run: it Succeeded (after cancelled runs were resumed), its result is the one its
input determines, and for every recorded step with epoch E:

- its body ran exactly once in attempt E (the one that recorded it);
- never in a later attempt (a completed step never runs again);
- at most once in each earlier attempt (the step in flight when that attempt was lost);
- for a fork, never at all when the step was copied from the source.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from stepstone.store import Store
from tests.workflows.chaos import expected_result


@dataclass
class Findings:
    runs: int = 0
    forks: int = 0
    steps_checked: int = 0
    reruns_of_in_flight_steps: int = 0
    problems: list[str] = field(default_factory=list)


def check(db_url: str, runs: list[dict[str, Any]]) -> Findings:
    found = Findings()
    store = Store.connect(db_url)
    try:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT run_id, step, attempt FROM chaos_effects").fetchall()
        executions: dict[tuple[str, int], list[int]] = defaultdict(list)
        for run_id, step, attempt in rows:
            executions[(run_id, step)].append(attempt)
        for body in runs:
            _check_run(store, body, executions, found)
    finally:
        store.close()
    return found


def _check_run(
    store: Store,
    body: dict[str, Any],
    executions: dict[tuple[str, int], list[int]],
    found: Findings,
) -> None:
    name = body["metadata"]["name"]
    status = body.get("status") or {}
    found.runs += 1
    if status.get("phase") != "Succeeded":
        found.problems.append(
            f"{name}: ended {status.get('phase')} "
            f"({(status.get('error') or {}).get('message', '')})"
        )
        return
    run = store.require_run(status["runId"])
    if run.forked_from:
        found.forks += 1
    want = expected_result(int(run.input["seed"]), int(run.input.get("steps", 8)))
    if run.output != want:
        found.problems.append(f"{name}: result {run.output}, expected {want}")
    for rec in store.load_steps(run.run_id):
        found.steps_checked += 1
        attempts = executions.get((run.run_id, rec.step), [])
        if run.fork_step is not None and rec.step < run.fork_step:
            if attempts:
                found.problems.append(f"{name}: copied step {rec.step} ran in {attempts}")
            continue
        per_attempt = Counter(attempts)
        if per_attempt[rec.epoch] != 1:
            found.problems.append(
                f"{name}: step {rec.step} ran {per_attempt[rec.epoch]} "
                f"time(s) in its recording attempt {rec.epoch}"
            )
        later = sorted(a for a in per_attempt if a > rec.epoch)
        if later:
            found.problems.append(
                f"{name}: completed step {rec.step} (attempt {rec.epoch}) "
                f"ran again in attempts {later}"
            )
        twice = sorted(a for a, n in per_attempt.items() if a < rec.epoch and n > 1)
        if twice:
            found.problems.append(f"{name}: step {rec.step} ran twice within attempts {twice}")
        found.reruns_of_in_flight_steps += sum(1 for a in per_attempt if a < rec.epoch)
