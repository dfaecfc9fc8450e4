"""The pod entrypoint's exit codes: the contract the operator reads."""

from __future__ import annotations

import subprocess
import sys

from stepstone import Client
from stepstone.contract import ENV_ATTEMPT, ExitCode
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import REPO, finish, next_attempt, runner_env, spawn_runner
from tests.workflows import misc, orders


def test_succeeded_failed_suspended(client: Client, store: Store, database_url: str) -> None:
    ok = client.start(orders.pipeline, {"order_id": 1}).run_id
    assert finish(spawn_runner(database_url, ok, next_attempt(store, ok)))[0] == 0
    bad = client.start(misc.giving_up).run_id
    assert finish(spawn_runner(database_url, bad, next_attempt(store, bad)))[0] == ExitCode.FAILED
    sleepy = client.start(misc.sleeper, {"seconds": 600}).run_id
    code, _ = finish(spawn_runner(database_url, sleepy, next_attempt(store, sleepy)))
    assert code == ExitCode.SUSPENDED  # default threshold: 60 s
    # a relaunched pod of a finished run reports the outcome without running anything
    assert finish(spawn_runner(database_url, ok, next_attempt(store, ok)))[0] == 0


def test_a_stale_attempt_is_fenced_at_start(
    client: Client, store: Store, database_url: str
) -> None:
    run_id = client.start(orders.pipeline, {"order_id": 1}).run_id
    stale = next_attempt(store, run_id)
    next_attempt(store, run_id)
    code, out = finish(spawn_runner(database_url, run_id, stale))
    assert code == ExitCode.FENCED, out
    assert store.require_run(run_id).status == RunStatus.PENDING


def test_missing_environment_is_a_config_error(database_url: str) -> None:
    env = runner_env(database_url, "r", 1)
    del env[ENV_ATTEMPT]
    result = subprocess.run(
        [sys.executable, "-m", "stepstone", "runner"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == ExitCode.CONFIG_ERROR
    assert "missing environment variables: STEPSTONE_ATTEMPT" in result.stderr


def test_a_database_without_the_schema_is_a_config_error(postgres_server: str) -> None:
    code, out = finish(spawn_runner(postgres_server, "r", 1))
    assert code == ExitCode.CONFIG_ERROR
    assert "stepstone db migrate" in out
