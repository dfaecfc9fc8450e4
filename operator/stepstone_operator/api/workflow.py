"""The Workflow resource: which image and entrypoint runs, and how its pods are run."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from stepstone_operator.api._base import ApiModel, Condition, SecretKeyReference

ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"


class Recovery(ApiModel):
    """What to do when a runner pod is lost (deleted, evicted, OOM-killed, node lost, stuck,
    silent). Workflow code raising an exception is not pod loss."""

    max_attempts: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Pod losses recovered with a new pod; the next loss fails the run.",
    )
    backoff_seconds: int = Field(
        default=5,
        ge=0,
        le=86400,
        description="Wait before the second and later recoveries, doubled each time (the "
        "first recovery is immediate).",
    )
    max_backoff_seconds: int = Field(
        default=300, ge=0, le=86400, description="Cap of the doubling backoff."
    )
    start_timeout_seconds: int = Field(
        default=300,
        ge=5,
        le=86400,
        description="A pod still not running after this long (unschedulable, image errors) "
        "counts as lost.",
    )
    heartbeat_timeout_seconds: int = Field(
        default=30,
        ge=3,
        le=3600,
        description="A running runner whose heartbeat is older than this is Unresponsive: its "
        "pod is replaced.",
    )


class EnvVar(ApiModel):
    """An environment variable of the runner container (as in core/v1)."""

    name: str = Field(min_length=1, description="Environment variable name.")
    value: str | None = Field(default=None, description="Its value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""A Kubernetes resource quantity (what controller-gen writes for resource.Quantity)."""

Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY}),
]

RESERVED_ENV = (
    "STEPSTONE_RUN_ID",
    "STEPSTONE_ATTEMPT",
    "STEPSTONE_DATABASE_URL",
    "STEPSTONE_POD_NAME",
    "STEPSTONE_SUSPEND_AFTER_SECONDS",
)
"""Variables the operator sets in each runner pod; a Workflow may not set them."""


class Resources(ApiModel):
    """Requests and limits of the runner container (as in core/v1)."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Resource requests of the runner container, e.g. cpu: 100m."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Resource limits of the runner container, e.g. memory: 512Mi."
    )


class Database(ApiModel):
    """Where runner pods find the stepstone database."""

    secret_ref: SecretKeyReference = Field(
        default_factory=SecretKeyReference,
        description="Secret key holding the Postgres URL the runner connects to.",
    )


class WorkflowSpec(ApiModel):
    """What runs (image, entrypoint) and how its pods are run and recovered."""

    image: str = Field(
        min_length=1,
        max_length=512,
        description="Container image with the workflow code and stepstone installed.",
    )
    entrypoint: str = Field(
        pattern=ENTRYPOINT_PATTERN,
        max_length=512,
        description="The @workflow function, as module:function.",
    )
    version: str | None = Field(
        default=None,
        max_length=128,
        description="An application version recorded with each run (default: the image).",
    )
    recovery: Recovery = Field(default_factory=Recovery, description="Pod-loss recovery.")
    cancel_grace_period_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="After a cancel, time for the running step to clean up before its pod is "
        "killed.",
    )
    suspend_after_seconds: int = Field(
        default=60,
        ge=1,
        le=86400,
        description="Sleeps and event waits longer than this release the pod; a new one starts "
        "at the wake time or when the event arrives.",
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")
    resources: Resources | None = Field(default=None, description="Runner container resources.")
    service_account_name: str | None = Field(
        default=None, description="ServiceAccount of runner pods (its token is never mounted)."
    )
    node_selector: dict[str, str] | None = Field(
        default=None, description="Node labels runner pods must match."
    )
    tolerations: list[dict[str, Any]] | None = Field(
        default=None,
        description="core/v1 Tolerations of runner pods.",
        json_schema_extra={
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    )
    database: Database = Field(
        default_factory=Database, description="Where runners find the stepstone database."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="A run still unfinished this long after it started fails with "
        "DeadlineExceeded.",
    )
    input_schema: dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema the input of every run must satisfy; a run whose input does "
        "not fails at once with a condition listing the errors.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class WorkflowStatus(ApiModel):
    """What the operator last observed of this Workflow."""

    observed_generation: int | None = Field(default=None, description="Last generation seen.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready.")
