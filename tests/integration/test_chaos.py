"""The chaos suite in its short form (``make chaos`` runs the full one): a dozen runs, a
minute of faults (pod deletions, killed runners, a silenced node, the operator and Postgres
restarted, cancels, resumes and forks), then proof that nothing was lost or done twice."""

from __future__ import annotations

import os
import secrets

import pytest

from tests.chaos.faults import Environment
from tests.chaos.run import ChaosConfig, new_rng, run_chaos
from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.operator import OperatorProcess
from tests.substrate.postgres import LocalPostgres

pytestmark = pytest.mark.cluster


def test_chaos_short(
    cluster: ClusterHandle,
    kubelet: KubeletHandle,
    run_ns: str,
    stepstone_db: str,
    live_operator: OperatorProcess,
    postgres_instance: LocalPostgres | None,
) -> None:
    seed = int(os.environ.get("STEPSTONE_CHAOS_SEED") or secrets.randbelow(10_000))
    config = ChaosConfig(
        runs=12,
        steps=6,
        step_seconds=(1.0, 4.0),
        duration=60.0,
        settle_timeout=300.0,
        seed=seed,
    )
    env = Environment(
        cluster=cluster,
        kubelet=kubelet,
        operator=live_operator,
        postgres=postgres_instance,
        namespace=run_ns,
        workflow="chaos",
        rng=new_rng(seed),
    )
    report = run_chaos(env, stepstone_db, config)
    print(report.table())
    assert report.findings is not None
    assert not report.findings.problems, report.table()
    assert report.findings.runs >= config.runs
    assert sum(report.injected.values()) >= 10, report.table()
