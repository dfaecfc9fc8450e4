"""Prometheus metrics of the operator: runs by phase, recoveries by reason, reconcile latency,
step throughput. Served on ``--metrics-port`` at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs = Gauge(
            "stepstone_workflowruns", "WorkflowRuns by phase", ["phase"], registry=self.registry
        )
        self.recoveries = Counter(
            "stepstone_recoveries_total",
            "Runner pods lost and recovered, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "stepstone_reconcile_seconds",
            "Time of one reconcile of one run",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "stepstone_reconcile_errors_total", "Reconciles that raised", registry=self.registry
        )
        self.steps = Counter(
            "stepstone_steps_completed_total",
            "Steps completed by runs this operator watches",
            registry=self.registry,
        )
        self.pods_created = Counter(
            "stepstone_runner_pods_created_total", "Runner pods created", registry=self.registry
        )
        self.status_patches = Counter(
            "stepstone_status_patches_total",
            "WorkflowRun status patches",
            ["kind"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "stepstone_workqueue_depth", "Runs waiting to be reconciled", registry=self.registry
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
