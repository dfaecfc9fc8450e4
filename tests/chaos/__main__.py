"""``make chaos``: the full chaos suite on a private local cluster, with its own Postgres and
operator. ``python -m tests.chaos --runs 50 --duration 180 --seed 7``; exits non-zero when a
check fails. The summary table is printed and saved to bench/results/chaos.txt."""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
import uuid
from pathlib import Path

import psycopg

from tests.chaos.faults import Environment
from tests.chaos.run import ChaosConfig, new_rng, run_chaos
from tests.substrate import wait_for
from tests.substrate.fixtures import session_cluster, session_scratch
from tests.substrate.operator import OperatorProcess
from tests.substrate.postgres import LocalPostgres
from tests.substrate.tools import REPO
from tests.workflows import effects


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--settle-timeout", type=float, default=900.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(10_000)
    config = ChaosConfig(
        runs=args.runs,
        steps=args.steps,
        duration=args.duration,
        settle_timeout=args.settle_timeout,
        seed=seed,
    )
    postgres = LocalPostgres.create()
    postgres.start()
    try:
        with session_cluster(session_scratch()) as cluster:
            assert cluster.kubelet is not None
            db = postgres.url_for("chaos")
            with psycopg.connect(postgres.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE chaos")
            effects.install(db)
            cluster.kubectl("apply", "-f", str(REPO / "crds"))
            operator = OperatorProcess(
                kubeconfig=Path(cluster.kubeconfig),
                database_url=db,
                log=Path(cluster.state_dir) / "operator.log",
                extra_args=("--migrate",),
            )
            operator.start()
            try:
                namespace = f"chaos-{uuid.uuid4().hex[:6]}"
                cluster.kubectl("create", "namespace", namespace)
                wait_for(
                    lambda: cluster.get("serviceaccount", "default", namespace),
                    30,
                    description="the namespace's default ServiceAccount",
                )
                cluster.apply(
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "stepstone-database"},
                        "data": {"url": base64.b64encode(db.encode()).decode()},
                    },
                    namespace=namespace,
                )
                env = Environment(
                    cluster=cluster,
                    kubelet=cluster.kubelet,
                    operator=operator,
                    postgres=postgres,
                    namespace=namespace,
                    workflow="chaos",
                    rng=new_rng(seed),
                )
                report = run_chaos(env, db, config)
            finally:
                operator.stop()
    finally:
        postgres.destroy()
    table = report.table()
    print(table)
    out = REPO / "bench" / "results" / "chaos.txt"
    out.write_text(table + "\n")
    print(f"saved {out}")
    return 1 if report.findings is None or report.findings.problems else 0


if __name__ == "__main__":
    sys.exit(main())
