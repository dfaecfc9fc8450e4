"""The ``stepstone`` CLI, run as a user would (a subprocess), against a real Postgres."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from stepstone.contract import ExitCode
from stepstone.store import RunStatus, Store
from tests.sdk.conftest import REPO
from tests.workflows import effects


def cli(
    database_url: str,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "stepstone", "--database-url", database_url, *args],
        cwd=REPO,
        env={**os.environ, effects.ENV: database_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def test_run_prints_each_step_and_the_result(effects_url: str) -> None:
    out = cli(
        effects_url,
        "run",
        "tests.workflows.orders:pipeline",
        "--input",
        '{"order_id": 42}',
        "--run-id",
        "order-42",
    ).stdout
    assert out.splitlines()[0] == "run order-42  (tests.workflows.orders:pipeline)"
    for name in ("validate_order", "reserve_stock", "charge_card", "ship", "notify"):
        assert f"{name}" in out and "executed" in out
    assert "succeeded in" in out and "(0 replayed, 5 executed)" in out
    assert '"order_id": 42' in out


def test_listing_and_inspecting_runs(effects_url: str) -> None:
    cli(
        effects_url,
        "run",
        "tests.workflows.orders:pipeline",
        "--input",
        '{"order_id": 1}',
        "--run-id",
        "r1",
    )
    runs = cli(effects_url, "runs").stdout.splitlines()
    assert runs[0].split() == ["RUN", "WORKFLOW", "STATUS", "STEPS", "ATTEMPT", "CREATED"]
    assert runs[1].split()[:5] == ["r1", "pipeline", "succeeded", "5", "1"]
    steps = cli(effects_url, "steps", "r1").stdout.splitlines()
    assert steps[0].split()[:4] == ["STEP", "NAME", "KIND", "STATUS"]
    assert [line.split()[1] for line in steps[1:]] == [
        "validate_order",
        "reserve_stock",
        "charge_card",
        "ship",
        "notify",
    ]
    status = cli(effects_url, "status", "r1").stdout
    assert "succeeded" in status and "completed steps  5" in status
    as_json = json.loads(cli(effects_url, "-o", "json", "status", "r1").stdout)
    assert as_json["status"] == "succeeded" and as_json["output"]["order_id"] == 1
    steps_json = json.loads(cli(effects_url, "-o", "json", "steps", "r1").stdout)
    assert [s["step"] for s in steps_json] == [1, 2, 3, 4, 5]


def test_killed_mid_run_then_resumed_shows_replayed_and_executed(effects_url: str) -> None:
    crashed = cli(
        effects_url,
        "run",
        "tests.workflows.orders:pipeline",
        "--input",
        '{"order_id": 7}',
        "--run-id",
        "r7",
        check=False,
        env={"STEPSTONE_CRASH_AT": "after_step_body:3"},
    )
    assert crashed.returncode == -signal.SIGKILL
    out = cli(effects_url, "resume", "r7").stdout
    assert "resuming from step 3" in out
    lines = {line.split()[2]: line for line in out.splitlines() if line.startswith("  step")}
    assert "replayed" in lines["validate_order"] and "replayed" in lines["reserve_stock"]
    assert all("executed" in lines[n] for n in ("charge_card", "ship", "notify"))
    assert "(2 replayed, 3 executed)" in out
    assert effects.counts(effects_url, "r7")["charge_card"] == 2


def test_resume_refuses_a_run_whose_runner_is_alive(effects_url: str, store: Store) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stepstone",
            "--database-url",
            effects_url,
            "run",
            "tests.workflows.orders:pipeline",
            "--input",
            '{"order_id": 1, "block_at": "charge_card"}',
            "--run-id",
            "busy",
        ],
        cwd=REPO,
        env={**os.environ, effects.ENV: effects_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from tests.substrate import wait_for

        wait_for(
            lambda: effects.counts(effects_url, "busy").get("charge_card") == 1,
            30,
            description="the run inside step 3",
        )
        refused = cli(effects_url, "resume", "busy", check=False)
        assert refused.returncode == 2
        assert "is running on" in refused.stderr and "--force" in refused.stderr
        cancel = cli(effects_url, "cancel", "busy").stdout
        assert cancel.strip() == "run busy: cancelling"
        assert proc.wait(timeout=20) == ExitCode.CANCELLED
    finally:
        proc.kill()
    assert store.require_run("busy").status == RunStatus.CANCELLED


def test_fork_send_event_and_terminate(effects_url: str) -> None:
    cli(
        effects_url,
        "run",
        "tests.workflows.orders:pipeline",
        "--input",
        '{"order_id": 3}',
        "--run-id",
        "src",
    )
    out = cli(effects_url, "fork", "src", "--from-step", "4", "--run-id", "src-b").stdout
    assert "fork of src from step 4 (3 steps reused)" in out
    assert "(3 replayed, 2 executed)" in out
    cli(effects_url, "run", "tests.workflows.misc:approval", "--run-id", "appr", "--detach")
    sent = cli(
        effects_url, "send-event", "appr", "approval", "--payload", '{"ok": true}', "--key", "k"
    ).stdout
    assert sent.strip() == "event 'approval' sent to appr"
    again = cli(effects_url, "send-event", "appr", "approval", "--key", "k").stdout
    assert "already sent" in again
    out = cli(effects_url, "resume", "appr").stdout
    assert '{"ok": true}' in out
    cli(effects_url, "run", "tests.workflows.misc:echo", "--run-id", "t", "--detach")
    assert cli(effects_url, "terminate", "t").stdout.strip() == "run t: terminated"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("run", "tests.workflows.orders:pipeline", "--input", "{order: 1}"),
            "--input is not JSON (Expecting property name enclosed in double quotes",
        ),
        (("run", "tests.workflows.nothere:flow"), "cannot import module 'tests.workflows.nothere'"),
        (("status", "no-such-run"), "no run with id 'no-such-run'"),
        (("fork", "no-such-run", "--from-step", "2"), "no run with id 'no-such-run'"),
        (("send-event", "r", "e", "--payload", "nope"), "--payload is not JSON"),
    ],
)
def test_bad_input_gets_a_clear_message(
    effects_url: str, args: tuple[str, ...], message: str
) -> None:
    result = cli(effects_url, *args, check=False)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_a_database_without_the_schema_is_reported(postgres_server: str) -> None:
    result = cli(postgres_server, "runs", check=False)
    assert result.returncode == 2
    assert "stepstone db migrate" in result.stderr


def test_a_parent_and_its_child_run_locally(effects_url: str) -> None:
    out = cli(
        effects_url,
        "run",
        "tests.workflows.family:parent",
        "--input",
        '{"x": 6}',
        "--run-id",
        "fam",
    ).stdout
    assert '"result": 60' in out
    runs = cli(effects_url, "runs").stdout
    assert "fam/child-2" in runs


def test_wait_and_the_db_commands(effects_url: str, postgres_server: str) -> None:
    cli(
        effects_url, "run", "tests.workflows.misc:echo", "--input", '{"value": 9}', "--run-id", "w9"
    )
    assert cli(effects_url, "wait", "w9").stdout.strip() == "9"
    assert cli(effects_url, "db", "verify").stdout.startswith("schema version ")
    assert cli(effects_url, "db", "migrate").stdout.strip() == "schema is up to date"
    assert cli(effects_url, "db", "url").stdout.strip() == effects_url
