"""Helpers for SDK tests: counted side effects, a client, and runner subprocesses started the
way the operator starts pods (raise the epoch, then ``python -m stepstone runner``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepstone import Client
from stepstone.contract import (
    ENV_ATTEMPT,
    ENV_DATABASE_URL,
    ENV_HEARTBEAT_SECONDS,
    ENV_LOG_FORMAT,
    ENV_RUN_ID,
)
from stepstone.store import Store
from tests.workflows import effects

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def effects_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    effects.install(database_url)
    monkeypatch.setenv(effects.ENV, database_url)
    return database_url


@pytest.fixture
def client(store: Store, effects_url: str) -> Iterator[Client]:
    yield Client(store)


def next_attempt(store: Store, run_id: str) -> int:
    """What the operator does before creating a pod: raise the run's epoch."""
    current = store.require_run(run_id).epoch
    new = store.advance_epoch(run_id, current)
    assert new == current + 1
    return new


def runner_env(database_url: str, run_id: str, attempt: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        ENV_DATABASE_URL: database_url,
        ENV_RUN_ID: run_id,
        ENV_ATTEMPT: str(attempt),
        ENV_LOG_FORMAT: "text",
        ENV_HEARTBEAT_SECONDS: "0.5",
        effects.ENV: database_url,
    }
    env.update(extra)
    return env


def spawn_runner(
    database_url: str, run_id: str, attempt: int, **extra: str
) -> subprocess.Popen[bytes]:
    """``python -m stepstone runner`` as a pod would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "stepstone", "runner"],
        env=runner_env(database_url, run_id, attempt, **extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace")
