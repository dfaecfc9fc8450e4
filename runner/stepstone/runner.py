"""The pod entrypoint: ``python -m stepstone runner``.

Reads its whole configuration from the environment the operator sets (names in
``stepstone.contract``), executes the run's current attempt, and exits with a code that tells
the operator what happened. It never migrates the schema; it verifies it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from stepstone import _crash, _signals, logs
from stepstone._engine import execute
from stepstone._state import ExecuteOptions
from stepstone.contract import (
    ENV_ATTEMPT,
    ENV_DATABASE_URL,
    ENV_HEARTBEAT_SECONDS,
    ENV_LOG_FORMAT,
    ENV_LOG_LEVEL,
    ENV_POD_NAME,
    ENV_RUN_ID,
    ENV_SUSPEND_AFTER_SECONDS,
    ExitCode,
)
from stepstone.errors import StepstoneError
from stepstone.store import Store

log = logging.getLogger("stepstone.runner")

DEFAULT_SUSPEND_AFTER = 60.0


class ConfigError(StepstoneError):
    """The runner's environment is incomplete or malformed."""


@dataclass(frozen=True)
class RunnerConfig:
    run_id: str
    attempt: int
    database_url: str
    pod_name: str
    heartbeat_seconds: float
    suspend_after: float
    crash_points: frozenset[tuple[str, int]]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerConfig:
        missing = [k for k in (ENV_RUN_ID, ENV_ATTEMPT, ENV_DATABASE_URL) if not env.get(k)]
        if missing:
            raise ConfigError(f"missing environment variables: {', '.join(missing)}")
        try:
            attempt = int(env[ENV_ATTEMPT])
            heartbeat = float(env.get(ENV_HEARTBEAT_SECONDS, "1"))
            suspend = float(env.get(ENV_SUSPEND_AFTER_SECONDS, str(DEFAULT_SUSPEND_AFTER)))
            crash = _crash.from_env(env)
        except ValueError as exc:
            raise ConfigError(f"malformed runner environment: {exc}") from exc
        return cls(
            run_id=env[ENV_RUN_ID],
            attempt=attempt,
            database_url=env[ENV_DATABASE_URL],
            pod_name=env.get(ENV_POD_NAME) or f"{os.uname().nodename}:{os.getpid()}",
            heartbeat_seconds=heartbeat,
            suspend_after=suspend,
            crash_points=crash,
        )


DEEP_JSON = 25_000
"""Inputs may be nested as deep as the API server allows (the operator refuses more than 256
levels; this keeps a runner from failing on its way to say so)."""


def main(env: Mapping[str, str] | None = None) -> int:
    sys.setrecursionlimit(DEEP_JSON)
    env = os.environ if env is None else env
    logs.configure(fmt=env.get(ENV_LOG_FORMAT, "json"), level=env.get(ENV_LOG_LEVEL, "INFO"))
    try:
        config = RunnerConfig.from_env(env)
    except ConfigError as exc:
        log.error("cannot start runner", extra={"error": str(exc)})
        return ExitCode.CONFIG_ERROR
    store = Store.connect(config.database_url, app=f"stepstone-runner/{config.pod_name}")
    try:
        store.verify()
    except StepstoneError as exc:
        log.error("cannot start runner", extra={"run_id": config.run_id, "error": str(exc)})
        return ExitCode.CONFIG_ERROR
    _signals.install()
    options = ExecuteOptions(
        runner=config.pod_name,
        heartbeat_seconds=config.heartbeat_seconds,
        suspend_after=config.suspend_after,
        exit_on_fence=True,
        crash_points=config.crash_points,
        run_children_here=False,
    )
    try:
        outcome = execute(store, config.run_id, options=options, attempt=config.attempt)
    except StepstoneError as exc:
        log.error("runner failed", extra={"run_id": config.run_id, "error": str(exc)})
        return ExitCode.CONFIG_ERROR
    finally:
        store.close()
    return int(outcome.kind.exit_code)
