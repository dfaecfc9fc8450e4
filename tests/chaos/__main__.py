"""``make chaos``: the full chaos suite on a private local cluster, with its own Postgres and
operator. ``python -m tests.chaos --runs 50 --duration 180 --seed 7``; exits non-zero when a
check fails. The summary table is printed and saved to bench/results/chaos.txt."""

from __future__ import annotations

import argparse
import secrets
import sys
import uuid

from tests.chaos.faults import Environment
from tests.chaos.run import ChaosConfig, new_rng, run_chaos
from tests.substrate.stepstone_services import private_stepstone
from tests.substrate.tools import REPO


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
    with private_stepstone("chaos") as stepstone:
        assert stepstone.cluster.kubelet is not None
        namespace = stepstone.namespace(f"chaos-{uuid.uuid4().hex[:6]}")
        env = Environment(
            cluster=stepstone.cluster,
            kubelet=stepstone.cluster.kubelet,
            operator=stepstone.operator,
            postgres=stepstone.postgres,
            namespace=namespace,
            workflow="chaos",
            rng=new_rng(seed),
        )
        report = run_chaos(env, stepstone.database_url, config)
    table = report.table()
    print(table)
    out = REPO / "bench" / "results" / "chaos.txt"
    out.write_text(table + "\n")
    print(f"saved {out}")
    return 1 if report.findings is None or report.findings.problems else 0


if __name__ == "__main__":
    sys.exit(main())
