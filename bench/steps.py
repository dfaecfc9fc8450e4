"""Step throughput: 1,000 trivial steps, stepstone against DBOS and against the floor of one
INSERT + COMMIT per step through psycopg, all on the same Postgres in the same run; then the
cost of resuming a run with 10,000 completed steps into its next step.

    python -m bench.steps [--database-url URL] [--rounds 5] [--steps 1000]

Ends with the line ``steps/s stepstone=<n> dbos=<n> floor=<n>`` (medians over the rounds;
each round runs the three in a rotated order, after full-size warm-ups).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import time
from typing import Any

import psycopg

import stepstone
from bench._common import (
    fresh_database,
    machine,
    median,
    postgres,
    save,
    server_facts,
)
from stepstone import Client, ExecuteOptions, StepEvent
from stepstone.store import Store


@stepstone.step
def trivial(i: int) -> int:
    return i


@stepstone.workflow
def steps_workflow(n: int) -> int:
    total = 0
    for i in range(n):
        total += trivial(i)
    return total


OPTIONS = ExecuteOptions(runner="bench")


def stepstone_round(client: Client, n: int) -> float:
    started = time.perf_counter()
    outcome = client.run(steps_workflow, {"n": n}, options=OPTIONS)
    elapsed = time.perf_counter() - started
    assert outcome.output == sum(range(n)), outcome
    return n / elapsed


def floor_round(url: str, n: int) -> float:
    """The least a durable step can cost: one INSERT of a step-shaped row, committed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_steps (run_id text, step int, name text,"
            " output jsonb, PRIMARY KEY (run_id, step))"
        )
        run = f"r{time.monotonic_ns()}"
        started = time.perf_counter()
        for i in range(n):
            conn.execute(
                "INSERT INTO floor_steps VALUES (%s, %s, %s, %s::jsonb)",
                (run, i, "trivial", str(i)),
            )
        return n / (time.perf_counter() - started)


class Dbos:
    """DBOS Transact with its defaults, a workflow of ``n`` trivial ``@DBOS.step``s."""

    def __init__(self, url: str) -> None:
        from dbos import DBOS

        logging.getLogger("dbos").setLevel(logging.WARNING)
        self.dbos = DBOS
        DBOS(config={"name": "bench", "system_database_url": url, "run_admin_server": False})

        @DBOS.step()
        def dbos_trivial(i: int) -> int:
            return i

        @DBOS.workflow()
        def dbos_workflow(n: int) -> int:
            total = 0
            for i in range(n):
                total += dbos_trivial(i)
            return total

        self.workflow = dbos_workflow
        with contextlib.redirect_stdout(io.StringIO()):
            DBOS.launch()
        self.version = _version("dbos")

    def round(self, n: int) -> float:
        started = time.perf_counter()
        result = self.workflow(n)
        elapsed = time.perf_counter() - started
        assert result == sum(range(n))
        return n / elapsed

    def close(self) -> None:
        self.dbos.destroy()


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def resume_cost(store: Store, completed: int) -> dict[str, float]:
    """A run with ``completed`` recorded steps, executed again: time until its next step
    starts (claim, one replay query, replaying every step in the workflow code)."""
    client = Client(store)
    run_id = client.start(steps_workflow, {"n": completed + 1}).run_id
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO stepstone.steps (run_id, step, name, kind, status, output, started_at,"
            " epoch) SELECT %(r)s, g, 'trivial', 'step', 'succeeded', to_jsonb(g - 1), now(), 0"
            " FROM generate_series(1, %(n)s) g",
            {"r": run_id, "n": completed},
        )
    started = time.perf_counter()
    reached: list[float] = []

    def on_event(event: StepEvent) -> None:
        if event.kind == "started" and event.step == completed + 1:
            reached.append(time.perf_counter() - started)

    outcome = client.execute(run_id, options=ExecuteOptions(runner="bench", on_event=on_event))
    assert outcome.replayed == completed and outcome.executed == 1, outcome
    return {"completed_steps": completed, "seconds_to_next_step": reached[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a Postgres server (default: start one)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--resume-steps", type=int, default=10_000)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    with postgres(args.database_url) as server:
        ours_url = fresh_database(server, "bench_stepstone")
        dbos_url = fresh_database(server, "bench_dbos")
        floor_url = fresh_database(server, "bench_floor")
        store = Store.connect(ours_url)
        store.migrate()
        client = Client(store)
        dbos = Dbos(dbos_url)
        measure = {
            "stepstone": lambda: stepstone_round(client, args.steps),
            "dbos": lambda: dbos.round(args.steps),
            "floor": lambda: floor_round(floor_url, args.steps),
        }
        # warm up each at full size (imports, prepared statements, caches, the first WAL
        # segments of a fresh server), then interleave the rounds, rotating who goes first
        for _ in range(2):
            for run in measure.values():
                run()
        rates: dict[str, list[float]] = {name: [] for name in measure}
        names = list(measure)
        for r in range(args.rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                rates[name].append(measure[name]())
            print(
                f"round {r + 1}/{args.rounds}: "
                + "  ".join(f"{k}={v[-1]:,.0f}" for k, v in rates.items()),
                flush=True,
            )
        dbos.close()
        resume = [resume_cost(store, args.resume_steps) for _ in range(3)]
        facts = server_facts(ours_url)
        store.close()

    result: dict[str, Any] = {
        "steps_per_run": args.steps,
        "rounds": args.rounds,
        "steps_per_second": {k: round(median(v)) for k, v in rates.items()},
        "all_rounds": {k: [round(x) for x in v] for k, v in rates.items()},
        "ratio_vs_dbos": round(median(rates["stepstone"]) / median(rates["dbos"]), 2),
        "ratio_vs_floor": round(median(rates["stepstone"]) / median(rates["floor"]), 2),
        "resume": {
            "completed_steps": args.resume_steps,
            "seconds_to_next_step_median": round(
                median([x["seconds_to_next_step"] for x in resume]), 3
            ),
            "all": [round(x["seconds_to_next_step"], 3) for x in resume],
        },
        "dbos_version": dbos.version,
        "postgres": facts,
        "machine": machine(),
    }
    m = result["steps_per_second"]
    print()
    print(f"stepstone / dbos  = {result['ratio_vs_dbos']:.2f}x   (goal: at least 4x)")
    print(f"stepstone / floor = {result['ratio_vs_floor']:.2f}    (goal: at least 0.6)")
    print(
        f"resume of a run with {args.resume_steps:,} completed steps into its next step: "
        f"{result['resume']['seconds_to_next_step_median']:.3f} s   (goal: under 0.5 s)"
    )
    if not args.no_save:
        print(f"saved {save('steps', result)}")
    print(f"steps/s stepstone={m['stepstone']} dbos={m['dbos']} floor={m['floor']}")


if __name__ == "__main__":
    main()
