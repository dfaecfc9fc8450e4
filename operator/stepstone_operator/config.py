"""The operator's configuration, read once at the entrypoint into a frozen object."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    database_url: str
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all (cluster-wide RBAC)."""
    workers: int = 4
    migrate: bool = False
    """Apply database migrations at start (else only verify; the chart's hook Job migrates)."""
    watch_nodes: bool = True
    """Read node readiness to classify NodeLost (needs cluster-scoped read on nodes)."""
    db_poll_seconds: float = 0.5
    resync_seconds: float = 30.0
    runner_heartbeat_seconds: float = 1.0
    status_progress_min_interval: float = 1.0
    status_patch_qps: float = 50.0
    log_tail_lines: int = 40
    log_format: str = "json"
    log_level: str = "INFO"
    metrics_port: int = 8080
    liveness_port: int = 8081
    runner_log_format: str = "json"
    runner_service_account: str | None = None
    """ServiceAccount of runner pods whose Workflow names none (its token is never mounted)."""

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> OperatorConfig:
        env = os.environ if env is None else env
        parser = argparse.ArgumentParser(
            prog="python -m stepstone_operator",
            description="Run every WorkflowRun in a runner pod; recover lost pods with replay.",
        )
        parser.add_argument("--database-url", default=env.get("STEPSTONE_DATABASE_URL"))
        parser.add_argument(
            "--namespace",
            action="append",
            default=[n for n in env.get("STEPSTONE_NAMESPACES", "").split(",") if n],
            help="watch only this namespace (repeatable; default: all namespaces)",
        )
        parser.add_argument("--workers", type=int, default=int(env.get("STEPSTONE_WORKERS", "4")))
        parser.add_argument(
            "--migrate",
            action="store_true",
            default=env.get("STEPSTONE_MIGRATE", "") == "true",
            help="apply database migrations at start",
        )
        parser.add_argument(
            "--no-nodes",
            action="store_true",
            default=env.get("STEPSTONE_WATCH_NODES", "true") == "false",
            help="do not read nodes (namespaced RBAC)",
        )
        parser.add_argument("--log-format", default=env.get("STEPSTONE_LOG_FORMAT", "json"))
        parser.add_argument("--log-level", default=env.get("STEPSTONE_LOG_LEVEL", "INFO"))
        parser.add_argument(
            "--metrics-port", type=int, default=int(env.get("STEPSTONE_METRICS_PORT", "8080"))
        )
        parser.add_argument(
            "--liveness-port", type=int, default=int(env.get("STEPSTONE_LIVENESS_PORT", "8081"))
        )
        parser.add_argument(
            "--db-poll-seconds", type=float, default=float(env.get("STEPSTONE_DB_POLL", "0.5"))
        )
        parser.add_argument(
            "--runner-service-account",
            default=env.get("STEPSTONE_RUNNER_SERVICE_ACCOUNT") or None,
            help="ServiceAccount for runner pods whose Workflow sets none",
        )
        args = parser.parse_args(argv)
        if not args.database_url:
            parser.error("a database URL is required: --database-url or STEPSTONE_DATABASE_URL")
        return cls(
            database_url=args.database_url,
            namespaces=tuple(args.namespace),
            workers=args.workers,
            migrate=args.migrate,
            watch_nodes=not args.no_nodes,
            log_format=args.log_format,
            log_level=args.log_level,
            metrics_port=args.metrics_port,
            liveness_port=args.liveness_port,
            db_poll_seconds=args.db_poll_seconds,
            runner_service_account=args.runner_service_account,
        )
